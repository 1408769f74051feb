"""tfapp: tasks and data in, a trained, evaluated, plotted and exported Keras model out.

    python -c "import tfapp; help(tfapp.fit)"

The command line is `tfapp-train` (tfapp/cli/); from Python, `tfapp.fit(model, (x, y), loss=…, steps=…)` trains
your own Keras model with the same engine (tfapp/own_model.py), and `tfapp.Task` is what a task of your own is.
Both are imported on first use: `import tfapp` alone loads neither Keras nor TensorFlow (tfapp-train sets
KERAS_BACKEND before they load).
"""


def __getattr__(name):
    if name == "fit":
        from tfapp.own_model import fit
        return fit
    if name == "Task":
        from tfapp.tasks.task import Task
        return Task
    raise AttributeError(f"module 'tfapp' has no attribute {name!r}")
