"""Tabular tasks: `regression` (house-price style) and `classification`, on CSV columns or npz arrays.

    tfapp-train --task=regression --data=csv:houses.csv --label_column=price --model=mlp
    tfapp-train --task=classification --data=embedded:breast_cancer

Inputs are named columns: numeric ones are standardised inside the model with the train split's mean and
variance (`keras.layers.Normalization`). Categorical (string) columns never reach the model as strings: `adapt`
fits each column's vocabulary once on the train split, the pipeline maps values to int ids (0 = a value not seen
in training), and the model one-hot encodes the ids (`keras.layers.CategoryEncoding`), so the compiled step sees
only numbers (XLA, TPUs). The export wraps the same lookups around the model: it serves raw feature rows (one
input per column, strings for categorical ones; an unknown category is the out-of-vocabulary id, not an error).
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


def adapt(source, config):
    """{"categorical": {column: vocabulary}}: each string column's sorted distinct values on the train split."""
    del config
    string_columns = [name for name, (_, dtype) in source.spec["features"].items() if dtype == "string"]
    if not string_columns:
        return {}
    if source.arrays:
        train = source.arrays["train"]["x"]
        values = {name: np.asarray(train[name]).astype(str) for name in string_columns}
    else:
        rows = source.splits["train"]().map(lambda e: {name: e["x"][name] for name in string_columns}).batch(4096)
        values = {name: [] for name in string_columns}
        for batch in rows.as_numpy_iterator():
            for name in string_columns:
                values[name] += [v.decode() for v in batch[name]]
    return {"categorical": {name: sorted(set(values[name])) for name in string_columns}}  # "" = missing, a category


NUMERIC = "numeric_columns"  # the model input holding every numeric column, [batch, columns]


def _lookups(spec):
    """{input name: StringLookup} for the categorical columns: value -> int id, 0 for unseen values."""
    return {column_name(name): keras.layers.StringLookup(vocabulary=vocabulary, num_oov_indices=1,
                                                         name=f"{column_name(name)}_lookup")
            for name, vocabulary in spec.get("categorical", {}).items()}


def _model_inputs(columns, lookups):
    """Raw columns {input name: [B]} -> model inputs: the numeric ones stacked into one float32 [B, k] matrix
    (one input, one normalisation, whatever the width of the table), each category as int32 ids [B]."""
    numeric = [tf.cast(value, tf.float32) for name, value in columns.items() if name not in lookups]
    inputs = {name: tf.cast(lookups[name](value), tf.int32) for name, value in columns.items() if name in lookups}
    if numeric:
        inputs[NUMERIC] = tf.stack(numeric, axis=1)
    return inputs


def _features_for(spec):
    """Batched raw x (dict of columns or matrix [B, F]) -> model inputs."""
    lookups, names = _lookups(spec), [name for name, _ in _columns(spec)]

    def features(x):
        if not isinstance(x, dict):
            return {NUMERIC: tf.reshape(tf.cast(x, tf.float32), [tf.shape(x)[0], -1])}
        return _model_inputs({column_name(name): x[name] for name in names}, lookups)  # the spec's column order

    return features


def _encoded_inputs(spec):
    """Keras inputs (the numeric matrix, one id input per categorical column) and the concatenated feature
    vector: numeric columns standardised with the train split's statistics, categories one-hot."""
    inputs, parts = {}, []
    numeric = [name for name, dtype in _columns(spec) if dtype != "string"]
    if numeric:
        stats = [spec.get("feature_stats", {}).get(name) or (0.0, 1.0) for name in numeric]
        inputs[NUMERIC] = keras.Input(shape=(len(numeric),), name=NUMERIC)
        parts.append(keras.layers.Normalization(mean=[m for m, _ in stats], variance=[max(v, 1e-12) for _, v in stats],
                                                name="standardise")(inputs[NUMERIC]))
    for name, vocabulary in spec.get("categorical", {}).items():
        key = column_name(name)  # ids from the pipeline's lookup: 0 = unseen, 1.. = the train vocabulary
        inputs[key] = keras.Input(shape=(), name=key, dtype="int32")
        column = keras.layers.Reshape((1,))(inputs[key])
        parts.append(keras.layers.CategoryEncoding(len(vocabulary) + 1, output_mode="one_hot",
                                                   name=f"{key}_onehot")(column))
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


def _regression_preprocess_for(spec):
    """Batched {"x", "y"} -> (model inputs, labels as [B, 1] float32: Keras' per-example MSE averages over the
    last axis)."""
    features = _features_for(spec)
    return lambda batch: (features(batch["x"]), tf.reshape(tf.cast(batch["y"], tf.float32), [-1, 1]))


def _classification_preprocess_for(spec):
    features = _features_for(spec)
    return lambda batch: (features(batch["x"]), tf.cast(batch["y"], tf.int32))


def _serve(model, spec, outputs):
    """serving_default on raw rows: one input per column, strings for categorical ones (looked up here)."""
    lookups = _lookups(spec)
    signature = {column_name(name): tf.TensorSpec([None], tf.string if dtype == "string" else tf.float32,
                                                  name=column_name(name)) for name, dtype in _columns(spec)}

    @tf.function(input_signature=[signature])
    def serve(rows):
        return outputs(model(_model_inputs({name: rows[name] for name in signature}, lookups), training=False))

    return {"serving_default": serve, "_keep": list(lookups.values())}


def serve_regression(model, spec):
    """serving_default: one tensor per column [batch] (strings for categorical columns) -> prediction [batch]."""
    return _serve(model, spec, lambda y: {"prediction": y[:, 0]})


def serve_classification(model, spec):
    """serving_default: one tensor per column [batch] (strings for categorical columns) -> class_id,
    probabilities."""
    return _serve(model, spec, class_outputs)


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
    preprocess=None,
    preprocess_for=_regression_preprocess_for,
    adapt=adapt,
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
    preprocess=None,
    preprocess_for=_classification_preprocess_for,
    adapt=adapt,
    vectorized_preprocess=True,
    serving=serve_classification,
    defaults={"batch_size": 32, "train_steps": 600, "eval_every": 100, "learning_rate": 3e-3},
    smoke={"batch_size": 16, "train_steps": 20, "eval_every": 10, "autotune_seconds": 0.5},
)
