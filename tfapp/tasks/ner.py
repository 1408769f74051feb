"""`token_classification` (named-entity recognition): one IOB2 tag per token.

    tfapp-train --task=token_classification                       # embedded:ner_sample (sentences we wrote)
    tfapp-train --task=token_classification --data=conll:train.conll --model=transformer
    tfapp-train --task=token_classification --data=tfds:conll2003 --data_dir=/data/tfds

The word vocabulary (lower-cased, the `--vocab_size` most frequent training words) is fitted once on the train
split. The pipeline pads or cuts every sentence to `--sequence_length` tokens (default: the longest training
sentence rounded up to a multiple of 8, at most 128) and adds a word-shape id per token (lower, Capitalised,
UPPER, digits, punctuation, mixed), so unseen names still look like names. Padding tokens carry label -1 and
count in neither the loss nor the metrics. Training reports token accuracy; the end of the run adds entity-level
precision/recall/F1 (`tfapp/tasks/spans.py`) and the all-O baseline's F1. The export's `serving_default` takes
token lists (a string matrix padded with "") and returns a tag name per token.
"""
import collections

import keras
import numpy as np
import tensorflow as tf

from tfapp.tasks import spans
from tfapp.tasks.task import Task, dropout_rate
from tfapp.tasks.text import PositionEmbedding, encoder_block

SHAPES = ["[PAD]", "lower", "capitalised", "upper", "digits", "punctuation", "mixed"]
PAD_LABEL = -1


def _train_sentences(source):
    return [[t.decode("utf-8", "replace") for t in example["x"]]
            for example in source.splits["train"]().as_numpy_iterator()]


def adapt(source, config):
    """Fits the word vocabulary and the sequence length on the training sentences."""
    sentences = _train_sentences(source)
    counts = collections.Counter(token.lower() for sentence in sentences for token in sentence)
    words = [w for w, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))][:config.vocab_size - 2]
    longest = max(len(s) for s in sentences)
    length = config.sequence_length or int(min(128, max(8, -(-longest // 8) * 8)))
    return {"vocabulary": words, "sequence_length": length}


def word_shapes(tokens):
    """Shape id (index into SHAPES) per token of a string tensor; "" (padding) -> 0."""
    def full(pattern):
        return tf.strings.regex_full_match(tokens, pattern)
    shape = tf.fill(tf.shape(tokens), 6)
    for index, pattern in ((5, r"[^\w]+"), (4, r"[\d.,:/-]*\d[\d.,:/-]*"), (3, r"[A-Z]{2,}"),
                           (2, r"[A-Z][a-z\-']*"), (1, r"[a-z\-']+")):
        shape = tf.where(full(pattern), index, shape)
    return tf.where(tokens == "", 0, shape)


def _encoder(spec):
    """tokens [..., L] (padded with "") -> {"word_ids", "shape_ids"} int32; unknown words -> 1, padding -> 0."""
    lookup = keras.layers.StringLookup(vocabulary=spec["vocabulary"], mask_token="", num_oov_indices=1)

    def encode(tokens):
        return {"word_ids": tf.cast(lookup(tf.strings.lower(tokens)), tf.int32),
                "shape_ids": tf.cast(word_shapes(tokens), tf.int32)}

    return encode, lookup


def _fit(tensor, length, pad):
    """Cuts or pads the last axis of a 1-D tensor to `length`."""
    tensor = tensor[:length]
    return tf.pad(tensor, [[0, length - tf.shape(tensor)[0]]], constant_values=pad)


def preprocess_for(spec):
    """One sentence {"x": tokens [n], "y": tag ids [n]} -> ({"word_ids", "shape_ids"} [L], labels [L])."""
    encode, _ = _encoder(spec)
    length = spec["sequence_length"]

    def preprocess(example):
        tokens = _fit(example["x"], length, "")
        labels = _fit(tf.cast(example["y"], tf.int32), length, PAD_LABEL)
        labels = tf.where(tokens == "", PAD_LABEL, labels)  # eval padding sentences: all tokens "" -> no labels
        features = {k: tf.ensure_shape(v, [length]) for k, v in encode(tokens).items()}
        return features, tf.ensure_shape(labels, [length])

    return preprocess


class TokenLoss(keras.losses.Loss):
    """Per-sentence mean cross-entropy over the real tokens (label != -1), from logits [B, L, tags]."""

    def call(self, labels, logits):
        keep = keras.ops.cast(keras.ops.not_equal(labels, PAD_LABEL), "float32")
        losses = keras.ops.sparse_categorical_crossentropy(keras.ops.maximum(labels, 0), logits, from_logits=True)
        return keras.ops.sum(losses * keep, axis=-1) / keras.ops.maximum(keras.ops.sum(keep, axis=-1), 1.0)


class TokenAccuracy(keras.metrics.Metric):
    """Share of real tokens (label != -1) whose argmax tag is right; sample weights apply per sentence."""

    def __init__(self, name="token_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.correct = self.add_variable(shape=(), initializer="zeros", name="correct")
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")

    def update_state(self, labels, logits, sample_weight=None):
        keep = keras.ops.cast(keras.ops.not_equal(labels, PAD_LABEL), "float32")
        if sample_weight is not None:
            keep = keep * keras.ops.cast(keras.ops.reshape(sample_weight, (-1, 1)), "float32")
        predicted = keras.ops.cast(keras.ops.argmax(logits, axis=-1), labels.dtype)
        hits = keras.ops.cast(keras.ops.equal(predicted, labels), "float32")
        self.correct.assign_add(keras.ops.sum(hits * keep))
        self.total.assign_add(keras.ops.sum(keep))

    def result(self):
        return self.correct / keras.ops.maximum(self.total, 1.0)

    def reset_state(self):
        self.correct.assign(0.0)
        self.total.assign(0.0)


def _inputs(spec, width, rate=0.2):
    length = spec["sequence_length"]
    words = keras.Input(shape=(length,), dtype="int32", name="word_ids")
    shapes = keras.Input(shape=(length,), dtype="int32", name="shape_ids")
    x = keras.layers.Concatenate()([
        keras.layers.Embedding(len(spec["vocabulary"]) + 2, width, name="word_embedding")(words),
        keras.layers.Embedding(len(SHAPES), 8, name="shape_embedding")(shapes)])
    return {"word_ids": words, "shape_ids": shapes}, keras.layers.Dropout(rate)(x)


def _tags(x, spec):
    return keras.layers.Dense(spec["num_classes"], name="tag_logits", dtype="float32")(x)


def build_bilstm(config, spec):
    inputs, x = _inputs(spec, 64, dropout_rate(config, 0.2))
    x = keras.layers.Bidirectional(keras.layers.LSTM(64, return_sequences=True))(x)
    return keras.Model(inputs, _tags(x, spec), name="ner_bilstm")


def build_transformer(config, spec, width=64, layers=2):
    inputs, x = _inputs(spec, width, dropout_rate(config, 0.2))
    x = PositionEmbedding(name="positions")(keras.layers.Dense(width)(x))
    keep = keras.ops.not_equal(inputs["word_ids"], 0)
    mask = keras.ops.logical_and(keep[:, None, :], keras.ops.ones_like(keep)[:, :, None])
    for i in range(layers):
        x = encoder_block(x, width, 4, 2 * width, f"block{i}", mask, rate=dropout_rate(config, 0.1))
    return keras.Model(inputs, _tags(x, spec), name="ner_transformer")


def _tag_sequences(tag_names, ids_rows, label_rows):
    """Tag-name lists of the real tokens (label != -1) of each sentence."""
    return [[tag_names[i] for i, label in zip(ids, labels) if label != PAD_LABEL]
            for ids, labels in zip(ids_rows, label_rows)]


def evaluate_extra(model, source, batches):
    """Entity-level precision/recall/F1 on the test split (padding sentences, weight 0, left out)."""
    tag_names = source.spec["tag_names"]
    truth, predicted = [], []
    for features, labels, weights in batches:
        ids = np.argmax(model(features, training=False), axis=-1)
        real = weights.numpy() > 0
        truth += _tag_sequences(tag_names, labels.numpy()[real], labels.numpy()[real])
        predicted += _tag_sequences(tag_names, ids[real], labels.numpy()[real])
    return spans.entity_f1(truth, predicted)


def all_o_baseline(source, config=None):
    """Entity F1 of tagging every token O (0: it finds no entity)."""
    del config
    tag_names = source.spec["tag_names"]
    truth = [[tag_names[t] for t in example["y"]] for example in source.splits["test"]().as_numpy_iterator()]
    return {"all_O_entity_f1": spans.entity_f1(truth, [["O"] * len(t) for t in truth])["entity_f1"]}


def serving(model, spec):
    """serving_default: tokens string [batch, n] padded with "" -> tags (names) and tag_ids [batch, n]."""
    encode, lookup = _encoder(spec)
    length = spec["sequence_length"]
    names = tf.constant(spec["tag_names"])

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.string, name="tokens")])
    def serve(tokens):
        n = tf.shape(tokens)[1]
        fitted = tf.pad(tokens[:, :length], [[0, 0], [0, tf.maximum(length - n, 0)]])
        ids = tf.argmax(model(encode(fitted), training=False), axis=-1, output_type=tf.int32)
        ids = tf.pad(ids, [[0, 0], [0, tf.maximum(n - length, 0)]])[:, :n]  # beyond sequence_length: O
        return {"tag_ids": ids, "tags": tf.where(tokens == "", "", tf.gather(names, ids))}

    return {"serving_default": serve, "_keep": [lookup]}


TASK = Task(
    name="token_classification",
    description="named-entity tags per token (conll:, tfds:conll2003); default embedded:ner_sample",
    default_data="embedded:ner_sample",
    models={"bilstm": build_bilstm, "transformer": build_transformer},
    loss=lambda: TokenLoss(reduction=None),
    metrics=lambda: [TokenAccuracy()],
    main_metric="token_accuracy",
    preprocess=None,
    vectorized_preprocess=False,
    serving=serving,
    defaults={"batch_size": 32, "train_steps": 600, "eval_every": 100, "learning_rate": 3e-3},
    smoke={"batch_size": 16, "train_steps": 20, "eval_every": 10, "autotune_seconds": 0.5},
    adapt=adapt,
    preprocess_for=preprocess_for,
    baselines=all_o_baseline,
    evaluate_extra=evaluate_extra,
)
