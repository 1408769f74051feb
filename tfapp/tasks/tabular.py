"""Tabular tasks: `regression` (house-price style) and `classification`, on CSV columns or npz arrays.

    tfapp-train --task=regression --data=csv:houses.csv --label_column=price --model=mlp
    tfapp-train --task=classification --data=embedded:breast_cancer

Inputs are named columns: numeric ones are standardised inside the model with the train split's mean and
variance (`keras.layers.Normalization`), categorical ones one-hot encoded with the vocabulary the source found
(`keras.layers.StringLookup`), so the export serves raw feature rows (one input per column).
npz arrays `x` of shape (n, features) become columns f0, f1, ….
"""
import re

import keras
import numpy as np
import tensorflow as tf

from tfapp.tasks.task import Task, class_outputs


def column_name(name):
    """A serving-signature-safe input name for a CSV column."""
    return re.sub(r"[^A-Za-z0-9_]", "_", name) or "column"


def _columns(spec):
    """[(column, dtype)] with npz matrices split into f0, f1, …"""
    features = spec["features"]
    if list(features) == ["x"]:
        shape, dtype = features["x"]
        return [(f"f{i}", "float32") for i in range(int(np.prod(shape)))]
    return [(name, "string" if dtype == "string" else "float32") for name, (_, dtype) in features.items()]


def preprocess(batch):
    """Batched: {"x": dict of columns or matrix [B, F], "y"} -> ({column: [B]}, label)."""
    x = batch["x"]
    if not isinstance(x, dict):
        x = tf.reshape(tf.cast(x, tf.float32), [tf.shape(x)[0], -1])
        x = {f"f{i}": x[:, i] for i in range(x.shape[-1])}
    features = {column_name(k): (v if v.dtype == tf.string else tf.cast(v, tf.float32)) for k, v in x.items()}
    return features, batch["y"]


def _stats(spec, name, values_key="feature_stats"):
    return spec.get(values_key, {}).get(name)


def _encoded_inputs(spec):
    """Keras inputs per column and the concatenated, normalised / one-hot encoded feature vector."""
    inputs, parts = {}, []
    for name, dtype in _columns(spec):
        key = column_name(name)
        inputs[key] = keras.Input(shape=(), name=key, dtype=dtype)
        column = keras.layers.Reshape((1,))(inputs[key]) if dtype != "string" else inputs[key]
        if dtype == "string":
            vocabulary = [v for v in spec.get("categorical", {}).get(name, []) if v != ""]
            lookup = keras.layers.StringLookup(vocabulary=vocabulary, output_mode="one_hot", name=f"{key}_onehot")
            parts.append(lookup(column))
        else:
            mean, variance = _stats(spec, name) or (0.0, 1.0)
            parts.append(keras.layers.Normalization(mean=mean, variance=max(variance, 1e-12), name=f"{key}_norm")(column))
    features = keras.layers.Concatenate()(parts) if len(parts) > 1 else parts[0]
    return inputs, features


def _outputs_size(spec, task):
    return spec["num_classes"] if task == "classification" else 1


def _build(config, spec, task, hidden):
    del config
    inputs, x = _encoded_inputs(spec)
    for width in hidden:
        x = keras.layers.Dense(width, activation="relu")(x)
    outputs = keras.layers.Dense(_outputs_size(spec, task), name="output", dtype="float32")(x)
    if task == "regression":
        mean, variance = spec.get("label_stats", (0.0, 1.0))
        # The dense layer predicts the standardised label; scale back to label units.
        outputs = keras.layers.Rescaling(float(np.sqrt(variance)), offset=float(mean), name="denormalise")(outputs)
    return keras.Model(inputs, outputs, name=f"{task}_{'_'.join(map(str, hidden)) or 'linear'}")


def _regression_preprocess(batch):
    """Labels as [B, 1] float32: Keras' per-example MSE averages over the last axis."""
    features, label = preprocess(batch)
    return features, tf.reshape(tf.cast(label, tf.float32), [-1, 1])


def _classification_preprocess(batch):
    features, label = preprocess(batch)
    return features, tf.cast(label, tf.int32)


def _serve(model, outputs):
    signature = {name: tf.TensorSpec([None], tensor.dtype, name=name) for name, tensor in model.input.items()}

    @tf.function(input_signature=[signature])
    def serve(rows):
        return outputs(model(rows, training=False))

    return {"serving_default": serve}


def serve_regression(model, spec=None):
    """serving_default: one tensor per column [batch] -> prediction [batch]."""
    return _serve(model, lambda y: {"prediction": y[:, 0]})


def serve_classification(model, spec=None):
    """serving_default: one tensor per column [batch] -> class_id, probabilities."""
    return _serve(model, class_outputs)


REGRESSION = Task(
    name="regression",
    description="tabular regression (csv: with --label_column; default embedded:diabetes)",
    default_data="embedded:diabetes",
    models={"linear": lambda c, s: _build(c, s, "regression", ()),
            "mlp": lambda c, s: _build(c, s, "regression", (64, 32))},
    loss=lambda: keras.losses.MeanSquaredError(reduction=None),
    metrics=lambda: [keras.metrics.MeanAbsoluteError(name="mae"), keras.metrics.RootMeanSquaredError(name="rmse")],
    main_metric="mae",
    main_metric_mode="min",
    preprocess=_regression_preprocess,
    vectorized_preprocess=True,
    serving=serve_regression,
    defaults={"batch_size": 32, "train_steps": 1500, "eval_every": 250, "learning_rate": 1e-2},
    smoke={"batch_size": 16, "train_steps": 20, "eval_every": 10, "autotune_seconds": 0.5},
)

CLASSIFICATION = Task(
    name="classification",
    description="tabular classification (csv:, npz:; default embedded:breast_cancer)",
    default_data="embedded:breast_cancer",
    models={"mlp": lambda c, s: _build(c, s, "classification", (64, 32)),
            "logistic": lambda c, s: _build(c, s, "classification", ())},
    loss=lambda: keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None),
    metrics=lambda: [keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    main_metric="accuracy",
    preprocess=_classification_preprocess,
    vectorized_preprocess=True,
    serving=serve_classification,
    defaults={"batch_size": 32, "train_steps": 600, "eval_every": 100, "learning_rate": 3e-3},
    smoke={"batch_size": 16, "train_steps": 20, "eval_every": 10, "autotune_seconds": 0.5},
)
