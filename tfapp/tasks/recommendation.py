"""`recommendation`: (user, item, rating) interactions -> rating prediction (matrix factorisation) or top-k
retrieval (two towers).

    tfapp-train --task=recommendation --data=tfds:movielens/100k-ratings --data_dir=/data/tfds      # mf
    tfapp-train --task=recommendation --data=csv:ratings.csv --user_column=user --item_column=item \\
        --label_column=rating --model=two_tower

User and item ids (strings or integers) get vocabularies from the train split, fitted once; unseen ids map to
one "unknown" row. `mf`: rating = global mean + user bias + item bias + user·item, trained with MSE; reported
next to the global-mean baseline's RMSE. `two_tower`: user and item towers (embedding + dense, L2-normalised),
trained with an in-batch softmax (each user's own item against the batch's other items); at the end every test
interaction is ranked against all items the user did not rate in training and `recall_at_10` is reported next
to the most-popular-items baseline. Both export `serving_default`: user id [batch] -> the top 10 item ids and
scores (predicted ratings for `mf`).
"""
import collections

import keras
import numpy as np
import tensorflow as tf

from tfapp.tasks.task import Task

TOP_K = 10


def _ids(values):
    """Ids as strings whatever their column type (integers stay integers: 7.0 -> "7")."""
    if values.dtype == tf.string:
        return values
    return tf.strings.as_string(tf.cast(tf.round(tf.cast(values, tf.float64)), tf.int64))


def _pairs(source, split, spec):
    """(user, item) id strings of one split."""
    columns = (spec["user_column"], spec["item_column"])
    data = source.splits[split]().map(lambda e: tuple(_ids(e["x"][c]) for c in columns)).batch(4096)
    users, items = [], []
    for u, i in data.as_numpy_iterator():
        users += [v.decode() for v in u]
        items += [v.decode() for v in i]
    return users, items


def adapt(source, config):
    """User and item vocabularies, the global mean rating and item popularity, from the train split."""
    features = source.spec["features"]
    for flag, column in (("--user_column", config.user_column), ("--item_column", config.item_column)):
        if column not in features:
            raise ValueError(f"{flag}={column!r} is not a feature of {source.name}; features: "
                             f"{', '.join(sorted(features))}")
    spec = {"user_column": config.user_column, "item_column": config.item_column}
    users, items = _pairs(source, "train", spec)
    labels = np.asarray(list(source.splits["train"]().map(lambda e: e["y"]).as_numpy_iterator()), np.float64)
    popularity = collections.Counter(items)
    return {**spec, "users": sorted(set(users)), "items": [i for i, _ in popularity.most_common()],
            "global_mean": float(np.mean(labels)), "label_std": float(np.std(labels)) or 1.0}


def _lookups(spec):
    return (keras.layers.StringLookup(vocabulary=spec["users"], num_oov_indices=1, name="user_lookup"),
            keras.layers.StringLookup(vocabulary=spec["items"], num_oov_indices=1, name="item_lookup"))


def _preprocess_for(spec, in_batch_labels):
    user_lookup, item_lookup = _lookups(spec)

    def preprocess(batch):
        x = batch["x"]
        features = {"user_id": tf.cast(user_lookup(_ids(x[spec["user_column"]])), tf.int32),
                    "item_id": tf.cast(item_lookup(_ids(x[spec["item_column"]])), tf.int32)}
        if in_batch_labels:  # unused: row r of the in-batch scores should pick column r (InBatchSoftmax)
            return features, tf.zeros_like(features["user_id"])
        return features, tf.reshape(tf.cast(batch["y"], tf.float32), [-1, 1])

    return preprocess


def _id_inputs():
    return {"user_id": keras.Input(shape=(), dtype="int32", name="user_id"),
            "item_id": keras.Input(shape=(), dtype="int32", name="item_id")}


class Dot(keras.layers.Layer):
    """Row-wise dot product [B, k] · [B, k] -> [B, 1]."""

    def call(self, a, b):
        return keras.ops.sum(a * b, axis=-1, keepdims=True)


class InBatchScores(keras.layers.Layer):
    """[B, k] users × [B, k] items -> [B, B] scores / temperature (row: a user, column: the batch's items)."""

    def __init__(self, temperature=0.1, **kwargs):
        super().__init__(**kwargs)
        self.temperature = temperature

    def call(self, users, items):
        return keras.ops.matmul(users, keras.ops.transpose(items)) / self.temperature


class InBatchSoftmax(keras.losses.Loss):
    """Per-example cross-entropy of in-batch scores [B, B] where row r's positive is column r (the labels are
    ignored: the target is the row's own position, so preprocessing never needs the batch size)."""

    def call(self, labels, scores):
        del labels
        targets = keras.ops.arange(keras.ops.shape(scores)[0])
        return keras.ops.sparse_categorical_crossentropy(targets, scores, from_logits=True)


class InBatchAccuracy(keras.metrics.Mean):
    """Share of users whose own item scores highest among the batch's items."""

    def __init__(self, name="in_batch_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)

    def update_state(self, labels, scores, sample_weight=None):
        del labels
        hits = keras.ops.equal(keras.ops.argmax(scores, axis=-1), keras.ops.arange(keras.ops.shape(scores)[0]))
        super().update_state(keras.ops.cast(hits, "float32"), sample_weight=sample_weight)


def build_mf(config, spec, dim=32):
    del config
    inputs = _id_inputs()
    n_users, n_items = len(spec["users"]) + 1, len(spec["items"]) + 1
    small = keras.regularizers.L2(1e-3)
    user = keras.layers.Embedding(n_users, dim, embeddings_initializer=keras.initializers.RandomNormal(stddev=0.05),
                                  embeddings_regularizer=small, name="user_tower")(inputs["user_id"])
    item = keras.layers.Embedding(n_items, dim, embeddings_initializer=keras.initializers.RandomNormal(stddev=0.05),
                                  embeddings_regularizer=small, name="item_tower")(inputs["item_id"])
    user_bias = keras.layers.Embedding(n_users, 1, embeddings_initializer="zeros", name="user_bias")(inputs["user_id"])
    item_bias = keras.layers.Embedding(n_items, 1, embeddings_initializer="zeros", name="item_bias")(inputs["item_id"])
    rating = keras.layers.Add(dtype="float32")([Dot()(user, item), user_bias, item_bias])
    rating = keras.layers.Rescaling(1.0, offset=spec["global_mean"], name="rating", dtype="float32")(rating)
    return keras.Model(inputs, rating, name="matrix_factorisation")


def _tower(size, dim, name):
    return keras.Sequential([keras.layers.Embedding(size, dim), keras.layers.Dense(dim),
                             keras.layers.UnitNormalization()], name=name)


def build_two_tower(config, spec, dim=32):
    del config
    inputs = _id_inputs()
    users = _tower(len(spec["users"]) + 1, dim, "user_tower")(inputs["user_id"])
    items = _tower(len(spec["items"]) + 1, dim, "item_tower")(inputs["item_id"])
    return keras.Model(inputs, InBatchScores(name="scores", dtype="float32")(users, items), name="two_tower")


def all_item_scores(model, user_ids, num_items):
    """Scores [users, num_items] of every vocabulary item (column j: item id j + 1) for int32 user ids."""
    item_ids = keras.ops.arange(1, num_items + 1, dtype="int32")
    users, items = model.get_layer("user_tower")(user_ids), model.get_layer("item_tower")(item_ids)
    scores = keras.ops.matmul(users, keras.ops.transpose(items))
    if "item_bias" in [layer.name for layer in model.layers]:
        scores = (scores + keras.ops.transpose(model.get_layer("item_bias")(item_ids))
                  + model.get_layer("user_bias")(user_ids) + model.get_layer("rating").offset)
    return scores


def recall_at_k(model, source, batches, k=TOP_K):
    """Share of test interactions whose item is in the user's top k among items not rated in training."""
    spec = source.spec
    item_index = {item: j for j, item in enumerate(spec["items"])}
    user_index = {user: j + 1 for j, user in enumerate(spec["users"])}
    seen = collections.defaultdict(set)
    for user, item in zip(*_pairs(source, "train", spec)):
        seen[user].add(item_index[item])
    hits = total = 0
    test_users, test_items = _pairs(source, "test", spec)
    for start in range(0, len(test_users), 512):
        chunk = list(zip(test_users[start:start + 512], test_items[start:start + 512]))
        known = [(u, i) for u, i in chunk if u in user_index and i in item_index]
        total += len(chunk)
        if not known:
            continue
        user_ids = np.asarray([user_index[u] for u, _ in known], np.int32)
        scores = np.array(all_item_scores(model, user_ids, len(spec["items"])))
        for row, (user, item) in enumerate(known):
            scores[row, list(seen[user] - {item_index[item]})] = -np.inf
            top = np.argpartition(-scores[row], min(k, scores.shape[1] - 1))[:k]
            hits += item_index[item] in set(top.tolist())
    return {f"recall_at_{k}": hits / max(total, 1)}


def rating_baselines(source, config=None):
    """RMSE and MAE of predicting the train split's global mean rating for every test interaction."""
    del config
    y = np.asarray(list(source.splits["test"]().map(lambda e: e["y"]).as_numpy_iterator()), np.float64)
    mean = source.spec["global_mean"]
    return {"global_mean_rmse": float(np.sqrt(np.mean((y - mean) ** 2))),
            "global_mean_mae": float(np.mean(np.abs(y - mean)))}


def popularity_baseline(source, config=None, k=TOP_K):
    """recall@k of recommending the k most popular training items the user has not rated."""
    del config
    spec = source.spec
    seen = collections.defaultdict(set)
    for user, item in zip(*_pairs(source, "train", spec)):
        seen[user].add(item)
    test = list(zip(*_pairs(source, "test", spec)))
    hits = 0
    for user, item in test:
        top = [i for i in spec["items"] if i not in seen[user] or i == item][:k]
        hits += item in top
    return {f"popularity_recall_at_{k}": hits / max(len(test), 1)}


def serving(model, spec):
    """serving_default: user id strings [batch] -> item_ids [batch, 10] (strings) and their scores."""
    user_lookup, _ = _lookups(spec)
    items = tf.constant(spec["items"])
    k = min(TOP_K, len(spec["items"]))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="user_id")])
    def serve(user_id):
        scores = all_item_scores(model, tf.cast(user_lookup(user_id), tf.int32), len(spec["items"]))
        top = tf.math.top_k(scores, k=k)
        return {"item_ids": tf.gather(items, top.indices), "scores": top.values}

    return {"serving_default": serve, "_keep": [user_lookup]}


TASK = Task(
    name="recommendation",
    description="(user, item, rating) rows: csv: or tfds:movielens/100k-ratings; mf (ratings) or two_tower (top-k)",
    default_data="tfds:movielens/100k-ratings",
    models={"mf": build_mf, "two_tower": build_two_tower},
    loss=lambda: keras.losses.MeanSquaredError(reduction=None),
    metrics=lambda: [keras.metrics.RootMeanSquaredError(name="rmse"), keras.metrics.MeanAbsoluteError(name="mae")],
    main_metric="rmse",
    main_metric_mode="min",
    preprocess=None,
    vectorized_preprocess=True,
    serving=serving,
    defaults={"batch_size": 256, "train_steps": 2000, "eval_every": 500, "learning_rate": 3e-3,
              "user_column": "user_id", "item_column": "movie_id", "label_column": "user_rating"},
    smoke={"batch_size": 64, "train_steps": 20, "eval_every": 10, "autotune_seconds": 0.5},
    adapt=adapt,
    preprocess_for=lambda spec: _preprocess_for(spec, in_batch_labels=False),
    baselines=rating_baselines,
    variants={"two_tower": {
        "loss": lambda: InBatchSoftmax(reduction=None),
        "metrics": lambda: [InBatchAccuracy()],
        "main_metric": "in_batch_accuracy",
        "main_metric_mode": "max",
        "preprocess_for": lambda spec: _preprocess_for(spec, in_batch_labels=True),
        "baselines": popularity_baseline,
        "evaluate_extra": recall_at_k,
    }},
)
