"""`Task`: a plain dataclass of functions that turns a data source into a model, a loss, metrics and a serving
signature. One file per task family in this folder; the registry is the dict in `tfapp/tasks/__init__.py`.

    python -c "from tfapp import tasks; print(tasks.get_task('digits'))"
"""
import dataclasses
from typing import Any, Callable, Mapping

import keras
import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    description: str
    default_data: str                                  # "embedded:digits", "tfds:mnist", …
    models: Mapping[str, Callable[..., keras.Model]]   # --model name -> build_model(config, spec); first = default
    loss: Callable[[], keras.losses.Loss]              # per-example loss (reduction=None); the loop averages
    metrics: Callable[[], list]                        # fresh keras.metrics.Metric objects for one run
    main_metric: str                                   # what curves.png, early stopping and targets use
    preprocess: Callable                               # tf.data map: raw example -> (features, label)
    vectorized_preprocess: bool                        # preprocess also works on a batch: map after batch
    serving: Callable                                  # model -> {signature name: tf.function on raw inputs}
    main_metric_mode: str = "max"                      # "max" (accuracy-like) or "min" (error-like)
    defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # flag values unless given
    smoke: Mapping[str, Any] = dataclasses.field(default_factory=dict)     # flag overrides for a seconds-long run

    @property
    def default_model(self):
        return next(iter(self.models))


def class_outputs(logits):
    """Serving outputs of a classifier: {"class_id": int32 [batch], "probabilities": softmax [batch, classes]}."""
    return {"class_id": tf.argmax(logits, axis=-1, output_type=tf.int32), "probabilities": tf.nn.softmax(logits)}
