"""`Task`: a plain dataclass of functions that turns a data source into a model, a loss, metrics and a serving
signature. One file per task family in this folder; the registry is the dict in `tfapp/tasks/__init__.py`.

    python -c "from tfapp import tasks; print(tasks.get_task('digits'))"
"""
import dataclasses
from typing import Any, Callable, Mapping, Optional

import keras
import numpy as np
import tensorflow as tf

from pipelines.python_source import import_object


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    models: Mapping[str, Callable[..., keras.Model]]   # --model name -> build_model(config, spec); first = default
    loss: Callable[[], keras.losses.Loss]              # per-example loss (reduction=None); the loop averages
    metrics: Callable[[], list]                        # fresh keras.metrics.Metric objects for one run
    main_metric: str                                   # what curves.png, early stopping and targets use
    description: str = ""
    default_data: Optional[str] = None                 # "embedded:digits", "tfds:mnist", …; None: --data is needed
    preprocess: Callable = None  # tf.data map: raw example -> (features, label[, sample_weight]); None: x, y[, w]
    vectorized_preprocess: bool = True                 # preprocess also works on a batch: map after batch
    serving: Callable = None  # (model, spec) -> {signature name: tf.function on raw inputs}; None: the model's own
    main_metric_mode: str = "max"                      # "max" (accuracy-like) or "min" (error-like)
    defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # flag values unless given
    smoke: Mapping[str, Any] = dataclasses.field(default_factory=dict)     # flag overrides for a seconds-long run
    # Optional hooks of tasks whose preprocessing is fitted on the data (vocabularies) or that report more:
    adapt: Optional[Callable] = None            # (source, config) -> dict merged into spec, fitted once on train
    preprocess_for: Optional[Callable] = None   # spec -> preprocess using that fitted state (else `preprocess`)
    baselines: Optional[Callable] = None        # (source, config) -> {name: value} of simple references on test
    evaluate_extra: Optional[Callable] = None   # (model, source, eval_batches) -> {name: value} needing a whole pass
    # A model trained for another objective (two-tower retrieval next to rating prediction): --model name ->
    # the Task fields it replaces (loss, metrics, main_metric, preprocess_for, …). See `for_model`.
    variants: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    # --model_parallel on JAX: {regex on variable paths: axis per dimension ("model" or None)}, tried before the
    # generic rule of strategies.jax_mesh.ShardedKernels.
    layout_rules: Mapping[str, tuple] = dataclasses.field(default_factory=dict)
    # --model names for which --jit_compile=auto means XLA without measuring: measured to win by more than
    # measuring would cost (the compile alone exceeds --autotune_seconds, so auto would never try it).
    xla_models: tuple = ()
    # curves.png's x axis: (spec, config) -> (label, units per optimizer step); None: optimizer steps.
    x_axis: Optional[Callable] = None
    # (model, spec, config) -> FLOPs of forward + backward per step by a formula (the transformer's 6·N·tokens +
    # attention), reported beside the counted FLOPs as a check of the count; None: no formula.
    reference_flops: Optional[Callable] = None
    # (config, model) -> a fresh optimizer of the task's own; None: --optimizer with --learning_rate, its schedule,
    # --clipnorm, --weight_decay and --gradient_accumulation_steps (tfapp.experiment.build_optimizer).
    optimizer: Optional[Callable] = None

    def model_builder(self, name):
        """build_model(config, spec) of `--model=name`: one of `models`, or the function "pkg.module:function"
        names (any task's data, loss and metrics with your own model); ValueError saying why not."""
        if name in self.models:
            return self.models[name]
        if ":" in name:
            builder = import_object(name, f"--model={name}")
            if not callable(builder):
                raise ValueError(f"--model={name}: {type(builder).__name__} is not a function")
            return builder
        raise ValueError(f"--model: unknown model {name!r} for task {self.name!r}; valid: {', '.join(self.models)} "
                         "or pkg.module:function")

    def __post_init__(self):
        if self.preprocess is None:
            object.__setattr__(self, "preprocess", features_and_label)
        if self.serving is None:
            object.__setattr__(self, "serving", serve_inputs)

    @property
    def default_model(self):
        return next(iter(self.models))

    def for_model(self, model_name):
        """This task as trained with `--model=model_name` (its variant's fields replaced)."""
        return dataclasses.replace(self, **self.variants.get(model_name, {}))

    def whole_test_set_figures(self, model, source, config, eval_batches):
        """(metrics that need a whole pass over the test split, baselines) of a trained model; either may be {}
        or None when the task has no such hook. `eval_batches`: (features, label, weight) batches of the test set."""
        extra = self.evaluate_extra(model, source, eval_batches) if self.evaluate_extra else {}
        return extra, self.baselines(source, config) if self.baselines else None

    def preprocessor(self, spec):
        """The tf.data preprocess function for a source with this (adapted) spec."""
        return self.preprocess_for(spec) if self.preprocess_for else self.preprocess


def dropout_rate(config, default):
    """--dropout, or the model's own `default` rate when the flag is not given."""
    return default if config.dropout is None else config.dropout


def split_labels(source, split):
    """All labels of one split as a numpy array (from memory when the source has arrays)."""
    if source.arrays:
        return np.asarray(source.arrays[split]["y"])
    return np.asarray(list(source.splits[split]().map(lambda e: e["y"]).as_numpy_iterator()))


def majority_baseline(source, config=None):
    """Accuracy on the test split of always predicting the train split's most frequent class."""
    del config
    y_train, y_test = split_labels(source, "train"), split_labels(source, "test")
    majority = np.bincount(y_train).argmax()
    return {"majority_class_accuracy": float(np.mean(y_test == majority))}


def class_outputs(logits):
    """Serving outputs of a classifier: {"class_id": int32 [batch], "probabilities": softmax [batch, classes]}."""
    return {"class_id": tf.argmax(logits, axis=-1, output_type=tf.int32), "probabilities": tf.nn.softmax(logits)}


def features_and_label(example):
    """The preprocess of data that needs none: {"x": …, "y": …} -> (x, y), or (x, y, sample_weight) for data
    that carries weights; works on batches too."""
    if "sample_weight" in example:
        return example["x"], example["y"], example["sample_weight"]
    return example["x"], example["y"]


def serve_inputs(model, spec):
    """serving_default on the model's own inputs as the data has them (`spec["features"]`: "x", or one tensor per
    column) -> {"outputs": …} (or the model's own dict of outputs)."""
    features = spec["features"]
    signature = {name: tf.TensorSpec([None, *shape], tf.as_dtype(dtype), name=name)
                 for name, (shape, dtype) in features.items()}

    @tf.function(input_signature=[signature])
    def serve(inputs):
        outputs = model(inputs["x"] if list(inputs) == ["x"] else inputs, training=False)
        return outputs if isinstance(outputs, dict) else {"outputs": outputs}

    return {"serving_default": serve}
