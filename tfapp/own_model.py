"""`tfapp.fit`: tfapp's engine (the multi-step loop, resume, reports, curves, export) for your own Keras model.

    python -c "import tfapp, keras, numpy as np; x = np.random.rand(256, 4); y = x.sum(1); m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)]); print(tfapp.fit(m, (x, y), loss='mse', steps=50, model_dir='/tmp/own').report['final_metrics'])"

`fit` turns the model, its loss, metrics and optimizer (given, or those it was compiled with) into a `tfapp.Task`
(added to this process's task registry) and the data into a Source (`pipelines.python_source`), then runs what
`tfapp-train` runs: validation picks the kept checkpoint, the test split is read once at the end. Calling it again
with the same `model_dir` resumes the run (after a crash, SIGTERM or SIGKILL), as the command line does.
"""
import dataclasses
import inspect
from typing import Any

import keras
import numpy as np

from pipelines import python_source
from tfapp import config as config_lib
from tfapp import engines, training
from tfapp import tasks
from tfapp.tasks.task import Task

MODEL = "model"  # the --model name of the user's model inside its task
# Metric names that are better when lower: the task's main metric is minimised for these.
LOWER_IS_BETTER = ("loss", "error", "mae", "mse", "mape", "msle", "crossentropy", "hinge", "divergence", "poisson")


@dataclasses.dataclass
class Run:
    """What `fit` returns: the report (as in report.json), the trained Keras model (the kept checkpoint's weights)
    and the run directory."""
    report: dict
    model: Any
    model_dir: str


class PerExampleLoss(keras.losses.Loss):
    """A loss per example, whatever the user's loss returns per element: the mean over every axis after the batch
    (the value Keras `fit` reports is the mean of these over the batch)."""

    def __init__(self, inner, name=None):
        super().__init__(reduction=None, name=name or getattr(inner, "name", None) or getattr(inner, "__name__", None))
        self.inner = inner

    def call(self, y_true, y_pred):
        values = self.inner(y_true, y_pred)
        rank = len(values.shape)
        return keras.ops.mean(values, axis=tuple(range(1, rank))) if rank > 1 else values


def _fresh(obj):
    """A new object of the same configuration (a metric or an optimizer must not be shared between runs)."""
    return obj.__class__.from_config(obj.get_config())


def loss_factory(loss):
    """() -> a fresh per-example loss of `loss`: a name, a keras Loss, or a function (y_true, y_pred)."""
    if loss is None:
        raise ValueError("tfapp.fit: no loss: pass loss=… or give a model compiled with one")
    if isinstance(loss, str):
        loss = keras.losses.get(loss)
    if isinstance(loss, keras.losses.Loss):
        template = loss

        def make():
            config = template.get_config()
            config["reduction"] = None
            return PerExampleLoss(template.__class__.from_config(config))
        return make
    if not callable(loss):
        raise ValueError(f"tfapp.fit: loss={loss!r} is not a name, a keras.losses.Loss or a function")
    return lambda: PerExampleLoss(loss)


def _accuracy_for(loss):
    """The accuracy metric Keras `compile` would pick for the string "accuracy" with this loss."""
    name = (loss if isinstance(loss, str) else getattr(loss, "name", None) or getattr(loss, "__name__", "")).lower()
    if "sparse" in name:
        return keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    if "binary" in name:
        return keras.metrics.BinaryAccuracy(name="accuracy")
    if "categorical" in name:
        return keras.metrics.CategoricalAccuracy(name="accuracy")
    return keras.metrics.Accuracy(name="accuracy")


def metrics_factory(metrics, loss):
    """() -> fresh metric objects of `metrics` (names, named as given, or keras Metrics)."""
    metrics = list(metrics or [])

    def make():
        fresh = []
        for metric in metrics:
            if metric in ("accuracy", "acc"):
                fresh.append(_accuracy_for(loss))
            elif isinstance(metric, str):
                config = keras.metrics.get(metric).get_config()
                fresh.append(keras.metrics.get(metric).__class__.from_config({**config, "name": metric}))
            elif isinstance(metric, keras.metrics.Metric):
                fresh.append(_fresh(metric))
            else:
                raise ValueError(f"tfapp.fit: metric {metric!r} is not a name or a keras.metrics.Metric")
        return fresh
    make()  # a bad metric fails here, before anything runs
    return make


def main_metric_of(metric_objects, main_metric=None):
    """(name, "min" or "max") of the metric that picks the kept checkpoint: `main_metric`, else the first
    metric, else the loss."""
    name = main_metric or (metric_objects[0].name if metric_objects else "loss")
    return name, "min" if any(part in name.lower() for part in LOWER_IS_BETTER) else "max"


def _build_if_needed(model, spec):
    """Creates the variables of a model that has none yet (a subclassed model before its first call) with a call on
    one row of zeros shaped like the data."""
    if model.built and model.weights:
        return model
    features = {name: np.zeros((1, *shape), dtype=dtype) for name, (shape, dtype) in spec["features"].items()}
    model(features["x"] if list(features) == ["x"] else features, training=False)
    return model


def _copy(model):
    """A new model of the same architecture (not yet its weights): Keras's clone, or for a subclassed model whose
    constructor takes no arguments, a new instance; ValueError when neither works."""
    try:
        return keras.models.clone_model(model)
    except Exception as error:  # noqa: BLE001 - Keras raises several kinds for a config it cannot rebuild
        reason = error
    constructor = inspect.signature(type(model).__init__).parameters.values()
    if all(p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in list(constructor)[1:]):
        return type(model)()
    raise ValueError("tfapp.fit: this model cannot be copied (the export and --mixed_precision=auto need a second "
                     f"one; {str(reason).splitlines()[-1]}): pass a function that returns the model, or give the "
                     "model a get_config") from None


def _in_strategy_scope():
    """Inside a tf.distribute strategy's scope other than the default one (TensorFlow backend)."""
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf
    return tf.distribute.has_strategy()


def model_builder(model):
    """build_model(config, spec) of the user's `model`: a keras.Model (used as it is the first time, copied with
    its weights after: an export's copy, a precision check's candidate; copied at once when its variables exist
    and a strategy's scope is open) or a function returning one (called with (config, spec) or with nothing)."""
    if isinstance(model, keras.Model):
        handed_out = []

        def build(config, spec):
            del config
            if not handed_out and not (model.weights and _in_strategy_scope()):
                handed_out.append(model)
                return _build_if_needed(model, spec)
            handed_out.append(model)  # a copy, built in this scope (variables made outside cannot be mirrored)
            copy = _build_if_needed(_copy(model), spec)
            copy.set_weights(model.get_weights())
            return copy
        return build
    if not callable(model):
        raise ValueError(f"tfapp.fit: model={model!r} is neither a keras.Model nor a function returning one")
    takes_arguments = bool(inspect.signature(model).parameters)
    return lambda config, spec: _build_if_needed(model(config, spec) if takes_arguments else model(), spec)


def _compiled(model, name):
    """What `model.compile` was given as `name` ("loss", "metrics", "optimizer"), or None."""
    compile_config = getattr(model, "_compile_config", None)
    return compile_config.config.get(name) if compile_config is not None else None


def task_for(model, loss=None, metrics=None, optimizer=None, main_metric=None, name=None, steps=1000):
    """The tfapp.Task of a user's model: its loss, metrics and optimizer (given, else those it was compiled with;
    no optimizer: tfapp's --optimizer and --learning_rate)."""
    loss = loss if loss is not None else _compiled(model, "loss")
    metrics = metrics if metrics is not None else _compiled(model, "metrics")
    optimizer = optimizer if optimizer is not None else _compiled(model, "optimizer")
    if isinstance(optimizer, str):
        optimizer = keras.optimizers.get(optimizer)
    make_metrics = metrics_factory(metrics, loss)
    metric_name, mode = main_metric_of(make_metrics(), main_metric)
    name = name or (model.name if isinstance(model, keras.Model) else getattr(model, "__name__", "own_model"))
    return Task(
        name=name, description=f"your own model {name!r} (tfapp.fit)", models={MODEL: model_builder(model)},
        loss=loss_factory(loss), metrics=make_metrics, main_metric=metric_name, main_metric_mode=mode,
        optimizer=(lambda config, model: _fresh(optimizer)) if optimizer is not None else None,
        defaults={"batch_size": 32, "train_steps": steps, "eval_every": max(1, steps // 10), "learning_rate": 1e-3})


def fit(model, train, *, validation=None, test=None, loss=None, metrics=None, optimizer=None, main_metric=None,
        steps=1000, batch_size=32, model_dir=None, backend=None, strategy="auto", callbacks=(), name=None, **flags):
    """Trains your own Keras model with tfapp's loop; returns a `Run` (report, trained model, run directory).

    model: a keras.Model, or a function returning one (built inside the strategy's scope: needed for Mirrored).
    train, validation, test: numpy (x, y) or (x, y, sample_weight), a finite tf.data.Dataset of unbatched examples
        of either form, or a "KIND:LOCATION" source string (then validation/test come from the source or its
        flags). Without `test`, --test_fraction of train is held out; without `validation`, --validation_fraction.
        Sample weights weigh the loss (as Keras `fit`) and every metric.
    loss, metrics, optimizer: default to what the model was compiled with. `main_metric` picks the kept checkpoint
        (default: the first metric, else the loss).
    steps, batch_size, model_dir, strategy, **flags: as tfapp-train's flags (`eval_every=`, `deterministic=`,
        `xla=`, `export=`, …). `backend` must be the one Keras runs on (KERAS_BACKEND), default it.
    callbacks: Keras callbacks (EarlyStopping, your own).
    """
    backend = backend or keras.backend.backend()
    if backend != keras.backend.backend():
        raise ValueError(f"tfapp.fit: backend={backend!r}, but Keras runs on {keras.backend.backend()!r}: set "
                         f"KERAS_BACKEND={backend} before keras is imported")
    task = tasks.add(task_for(model, loss, metrics, optimizer, main_metric, name, steps))
    if isinstance(train, str):
        data = train
    else:
        python_source.MEMORY[task.name] = lambda options: python_source.from_parts(
            f"tfapp.fit {task.name}", train, options, validation=validation, test=test)
        data = f"memory:{task.name}"
    config = config_lib.Config(task=task.name, model=MODEL, data=data, train_steps=steps, batch_size=batch_size,
                               model_dir=model_dir, backend=backend, strategy=strategy, **flags).resolved()
    experiment = engines.get(config.backend).prepare(config)
    if experiment.resumed_from:
        print(f"resuming from {experiment.resumed_from}", flush=True)
    report = training.train(experiment, callbacks=callbacks)
    if report.get("status") == "interrupted":  # SIGTERM / SIGINT: a checkpoint is saved; the same call resumes
        print(f"{report['signal']}: stopped at step {report['steps']} after saving a checkpoint; call tfapp.fit "
              f"again with model_dir={report['model_dir']!r} to resume", flush=True)
    return Run(report=report, model=experiment.model, model_dir=experiment.config.model_dir)
