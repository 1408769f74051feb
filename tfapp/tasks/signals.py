"""`signal_classification`: 1-D sequences (sensor traces, audio features, ECG beats) of fixed length.

    tfapp-train --task=signal_classification --data=npz:ecg.npz --model=cnn

Data: npz `x` of shape (n, length) or (n, length, channels), `y` class ids. Each channel is standardised inside
the model with the train split's overall mean/variance. Models: MLP on the flattened sequence, a 1-D CNN, a GRU.
"""
import keras
import tensorflow as tf

from tfapp.tasks.task import Task, class_outputs


def preprocess(batch):
    """Batched: {"x": [B, L] or [B, L, C], "y"} -> (float32 [B, L, C], int32 [B])."""
    x = tf.cast(batch["x"], tf.float32)
    return (x if x.shape.rank == 3 else x[..., None]), tf.cast(batch["y"], tf.int32)


def _inputs(spec):
    shape = tuple(spec["features"]["x"][0])
    shape = shape if len(shape) == 2 else (*shape, 1)
    inputs = keras.Input(shape=shape, name="signal")
    mean, variance = spec.get("signal_stats", (0.0, 1.0))
    return inputs, keras.layers.Normalization(mean=mean, variance=max(variance, 1e-12))(inputs)


def _head(x, spec):
    return keras.layers.Dense(spec["num_classes"], name="logits", dtype="float32")(x)


def build_mlp(config, spec):
    del config
    inputs, x = _inputs(spec)
    x = keras.layers.Dense(64, activation="relu")(keras.layers.Flatten()(x))
    return keras.Model(inputs, _head(keras.layers.Dense(32, activation="relu")(x), spec), name="signal_mlp")


def build_cnn(config, spec):
    del config
    inputs, x = _inputs(spec)
    for width in (32, 64):
        x = keras.layers.Conv1D(width, 5, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling1D(2)(x)
    x = keras.layers.GlobalMaxPooling1D()(keras.layers.Conv1D(64, 3, padding="same", activation="relu")(x))
    return keras.Model(inputs, _head(x, spec), name="signal_cnn")


def build_gru(config, spec):
    del config
    inputs, x = _inputs(spec)
    # A conv front end finds local shapes and shortens the sequence 4×; the GRU summarises where they occur.
    x = keras.layers.Conv1D(32, 5, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling1D(4)(x)
    x = keras.layers.GRU(32)(x)
    return keras.Model(inputs, _head(x, spec), name="signal_gru")


def serving(model, spec=None):
    """serving_default: float32 [batch, length(, channels)] -> class_id, probabilities."""
    shape = model.input_shape[1:]

    @tf.function(input_signature=[tf.TensorSpec([None, *shape[:-1]], tf.float32, name="signal")])
    def serve(signal):
        return class_outputs(model(signal[..., None] if shape[-1] == 1 else signal, training=False))

    return {"serving_default": serve}


TASK = Task(
    name="signal_classification",
    description="1-D sequences from npz: x (n, length[, channels]), y class ids",
    default_data="npz:signals.npz",
    models={"cnn": build_cnn, "gru": build_gru, "mlp": build_mlp},
    loss=lambda: keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None),
    metrics=lambda: [keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    main_metric="accuracy",
    preprocess=preprocess,
    vectorized_preprocess=True,
    serving=serving,
    defaults={"batch_size": 64, "train_steps": 600, "eval_every": 100, "learning_rate": 2e-3},
    smoke={"batch_size": 32, "train_steps": 20, "eval_every": 10, "autotune_seconds": 0.5},
)
