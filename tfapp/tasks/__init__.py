"""The task registry: `TASKS[name]` -> Task. Adding a task = one file here and one line below, or none: a `Task`
in your own module is `--task=pkg.module:NAME`, and `tfapp.fit` adds the task of a model it is given.

    python -c "from tfapp import tasks; print(sorted(tasks.TASKS))"
"""
from pipelines.python_source import import_object
from tfapp.tasks import digits, forecasting, images, language_model, ner, recommendation, signals, tabular, text
from tfapp.tasks.task import Task

TASKS = {
    "digits": digits.TASK,
    "image_classification": images.IMAGE_CLASSIFICATION,
    "image_folder": images.IMAGE_FOLDER,
    "regression": tabular.REGRESSION,
    "classification": tabular.CLASSIFICATION,
    "signal_classification": signals.TASK,
    "text_classification": text.TASK,
    "token_classification": ner.TASK,
    "forecasting": forecasting.TASK,
    "recommendation": recommendation.TASK,
    "language_model": language_model.TASK,
}


ADDED = {}  # tasks added in this process by name (tfapp.fit's task of the user's model)


def add(task):
    """Makes `task` known to get_task by its name in this process (what tfapp.fit does with the model it is given)."""
    ADDED[task.name] = task
    return task


def get_task(name):
    """The Task called `name`, a task added in this process, or the Task that "pkg.module:NAME" names; ValueError
    saying why otherwise."""
    if name in TASKS:
        return TASKS[name]
    if name in ADDED:
        return ADDED[name]
    if ":" in name:
        task = import_object(name, f"--task={name}")
        if not isinstance(task, Task):
            raise ValueError(f"--task={name}: {type(task).__name__} is not a tfapp.Task")
        return task
    raise ValueError(f"--task: unknown task {name!r}; valid: {', '.join(sorted(TASKS))} or pkg.module:NAME")


__all__ = ["ADDED", "TASKS", "Task", "add", "get_task"]
