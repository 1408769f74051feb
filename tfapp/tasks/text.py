"""`text_classification`: sentiment or topic of a text, from raw strings.

    tfapp-train --task=text_classification                         # embedded:stdlib_docs, 7 topics
    tfapp-train --task=text_classification --data=text:reviews.tsv --model=bigru
    tfapp-train --task=text_classification --data=tfds:imdb_reviews --data_dir=/data/tfds

A `keras.layers.TextVectorization` is adapted once on the training texts (lower-case, punctuation stripped,
the `--vocab_size` most frequent words) before the model is built; its vocabulary goes into the spec. The
pipeline turns strings into fixed-length id sequences (`--sequence_length`, default: the 95th percentile of
training lengths, a multiple of 8), so the train step sees static int shapes and compiles with XLA. The export
carries the same vectoriser: `serving_default` takes raw strings. Models: an embedding bag (mean of word
vectors), a bidirectional GRU and a small transformer encoder, all `keras.layers` only.
"""
import keras
import numpy as np
import tensorflow as tf

from tfapp.tasks.task import Task, class_outputs, dropout_rate, majority_baseline

STANDARDIZE = "lower_and_strip_punctuation"


def _train_texts(source):
    if source.arrays:
        return [str(t) for t in source.arrays["train"]["x"]]
    return [t.decode("utf-8", "replace") for t in source.splits["train"]().map(lambda e: e["x"]).as_numpy_iterator()]


def auto_sequence_length(token_counts, quantile=95, multiple=8, limit=512):
    """The `quantile` percentile of the training lengths rounded up to a multiple of 8, within [8, limit]."""
    length = int(np.ceil(np.percentile(token_counts, quantile) / multiple) * multiple)
    return int(min(max(length, multiple), limit))


def adapt(source, config):
    """Fits the vocabulary on the training texts; returns {"vocabulary", "sequence_length"} for the spec."""
    texts = _train_texts(source)
    vectorizer = keras.layers.TextVectorization(max_tokens=config.vocab_size, standardize=STANDARDIZE)
    vectorizer.adapt(tf.data.Dataset.from_tensor_slices(texts).batch(256))
    counts = tf.reduce_sum(tf.cast(vectorizer(tf.constant(texts)) > 0, tf.int32), axis=1).numpy()
    length = config.sequence_length or auto_sequence_length(counts)
    return {"vocabulary": [str(word) for word in vectorizer.get_vocabulary()], "sequence_length": length}


def vectorizer_for(spec):
    return keras.layers.TextVectorization(vocabulary=spec["vocabulary"], standardize=STANDARDIZE,
                                          output_sequence_length=spec["sequence_length"])


def preprocess_for(spec):
    """Batched: {"x": strings [B], "y"} -> (int32 ids [B, sequence_length], int32 labels [B])."""
    vectorizer = vectorizer_for(spec)

    def preprocess(batch):
        ids = tf.ensure_shape(vectorizer(batch["x"]), [batch["x"].shape[0], spec["sequence_length"]])
        return tf.cast(ids, tf.int32), tf.cast(batch["y"], tf.int32)

    return preprocess


def _inputs(spec, width, mask=True):
    tokens = keras.Input(shape=(spec["sequence_length"],), dtype="int32", name="token_ids")
    embedded = keras.layers.Embedding(len(spec["vocabulary"]), width, mask_zero=mask, name="embedding")(tokens)
    return tokens, embedded


def _head(x, spec, rate=0.3):
    x = keras.layers.Dropout(rate)(x)
    return keras.layers.Dense(spec["num_classes"], name="logits", dtype="float32")(x)


class TokenMean(keras.layers.Layer):
    """Mean of [batch, length, width] vectors over the non-padding tokens (id != 0); 0 for an empty text."""

    def call(self, vectors, tokens):
        keep = keras.ops.cast(keras.ops.not_equal(tokens, 0), vectors.dtype)[..., None]
        total = keras.ops.sum(vectors * keep, axis=1)
        return total / keras.ops.maximum(keras.ops.sum(keep, axis=1), 1.0)


def build_bag(config, spec):
    """Embedding bag: the mean of the word vectors (padding left out), then a linear classifier."""
    del config
    tokens, x = _inputs(spec, 64, mask=False)
    return keras.Model(tokens, _head(TokenMean(name="mean")(x, tokens), spec), name="text_bag")


def build_bigru(config, spec):
    tokens, x = _inputs(spec, 64)
    x = keras.layers.Bidirectional(keras.layers.GRU(32))(x)
    return keras.Model(tokens, _head(x, spec, dropout_rate(config, 0.3)), name="text_bigru")


class PositionEmbedding(keras.layers.Layer):
    """Adds a learned vector per position to a [batch, length, width] sequence."""

    def build(self, input_shape):
        self.positions = self.add_weight(shape=tuple(input_shape[1:]), initializer="random_normal", name="positions")

    def call(self, inputs):
        return inputs + keras.ops.cast(self.positions, inputs.dtype)


def encoder_block(x, width, heads, hidden, name, mask=None, rate=0.1):
    """Post-norm transformer encoder block (self-attention + MLP, `rate` dropout on each), keras.layers only."""
    attention = keras.layers.MultiHeadAttention(heads, width // heads, name=f"{name}_attention")
    attended = attention(x, x, attention_mask=mask)
    x = keras.layers.LayerNormalization(name=f"{name}_norm1")(x + keras.layers.Dropout(rate)(attended))
    y = keras.layers.Dense(hidden, activation="gelu", name=f"{name}_mlp1")(x)
    y = keras.layers.Dense(width, name=f"{name}_mlp2")(y)
    return keras.layers.LayerNormalization(name=f"{name}_norm2")(x + keras.layers.Dropout(rate)(y))


def padding_mask(tokens):
    """[batch, length, length] attention mask: True where the key token is not padding."""
    keep = keras.ops.not_equal(tokens, 0)
    return keras.ops.logical_and(keep[:, None, :], keras.ops.ones_like(keep)[:, :, None])


def build_transformer(config, spec, width=64, layers=2):
    tokens, x = _inputs(spec, width, mask=False)
    x = PositionEmbedding(name="positions")(x)
    mask = padding_mask(tokens)
    for i in range(layers):
        x = encoder_block(x, width, 4, 2 * width, f"block{i}", mask, rate=dropout_rate(config, 0.1))
    return keras.Model(tokens, _head(TokenMean(name="mean")(x, tokens), spec, dropout_rate(config, 0.3)),
                       name="text_transformer")


def serving(model, spec):
    """serving_default: raw strings [batch] -> class_id, probabilities, label (name); the vectoriser is inside."""
    vectorizer = vectorizer_for(spec)
    names = tf.constant(spec.get("label_names") or [str(i) for i in range(spec["num_classes"])])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(text):
        outputs = class_outputs(model(tf.cast(vectorizer(text), tf.int32), training=False))
        return {**outputs, "label": tf.gather(names, outputs["class_id"])}

    return {"serving_default": serve, "_keep": [vectorizer]}


TASK = Task(
    name="text_classification",
    description="label<TAB>text lines (text:), tfds:imdb_reviews; default embedded:stdlib_docs (7 topics)",
    default_data="embedded:stdlib_docs",
    models={"bag": build_bag, "bigru": build_bigru, "transformer": build_transformer},
    loss=lambda: keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None),
    metrics=lambda: [keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    main_metric="accuracy",
    preprocess=None,
    vectorized_preprocess=True,
    serving=serving,
    defaults={"batch_size": 32, "train_steps": 1500, "eval_every": 250, "learning_rate": 3e-3},
    smoke={"batch_size": 16, "train_steps": 20, "eval_every": 10, "autotune_seconds": 0.5},
    adapt=adapt,
    preprocess_for=preprocess_for,
    baselines=majority_baseline,
)
