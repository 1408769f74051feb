"""`language_model`: next-character prediction on a text stream, and text generation from the export.

    tfapp-train --task=language_model                         # embedded:shakespeare, the gpt model
    tfapp-predict --export_dir=runs/language_model-…/export/1 --prompt="ROMEO:" --max_new_tokens=200

Tokens are characters: the vocabulary is every character of the train split (85% of the text: nanoGPT's last 10%
validates, the first 5% tests; id 0 = a character only those parts have), fitted once (`adapt`) and applied to
the whole stream as int32 ids, so batches are windows of ids cut by position (`pipelines/corpus.py`): inputs
`[batch, sequence_length]`, targets shifted by one.
Models (keras.layers / keras.ops only, so they run on both backends): `gpt`, a pre-norm decoder-only transformer of
the size of nanoGPT's CPU "baby GPT" (4 layers, 4 heads, width 128, context 64, no dropout unless --dropout; rotary
positions instead of a learned table, zero-initialised residual projections, a normalised embedding and soft-capped
logits, which reach val loss 1.88 in ~350 steps where nanoGPT's architecture took ~500,
docs/tasks.md#language-model), `gpt_small` (6 layers, 6 heads, width 384: nanoGPT's shakespeare-char GPU size) and
an `lstm` baseline. Loss: mean cross-entropy per token in nats (what nanoGPT calls val loss); metrics: bits per
token, perplexity, next-character accuracy; baselines: unigram and bigram models' cross-entropy on the same test
split. The export has `serving_default` (raw strings → log-probabilities of the next character) and `generate`
(prompt → prompt + sampled text; the sampling loop is inside the graph).
"""
import math

import keras
import numpy as np
import tensorflow as tf

from pipelines import corpus
from tfapp.tasks.task import Task, dropout_rate


def adapt(source, config):
    """The character vocabulary of the train split, and the whole stream as token ids (0: not in it)."""
    del config
    codepoints = source.spec["codepoints"]
    vocabulary = np.unique(codepoints[source.spec["train_start"]:source.spec["train_end"]])
    table = np.zeros(int(codepoints.max()) + 1, np.int32)
    table[vocabulary] = np.arange(1, len(vocabulary) + 1, dtype=np.int32)
    return {"vocabulary": [chr(c) for c in vocabulary], "vocabulary_size": len(vocabulary) + 1,
            "token_ids": table[codepoints]}


def preprocess_for(spec):
    """positions [batch] -> (ids [batch, T], next ids [batch, T]); works on batches (vectorized)."""
    ids, length = tf.constant(spec["token_ids"]), spec["sequence_length"]

    def preprocess(example):
        window = corpus.windows(ids, example["x"], length)
        return window[:, :-1], window[:, 1:]
    return preprocess


def token_cross_entropy(targets, logits):
    """[batch] mean cross-entropy per token, nats (float32 whatever the compute dtype)."""
    losses = keras.losses.sparse_categorical_crossentropy(targets, keras.ops.cast(logits, "float32"),
                                                          from_logits=True)
    return keras.ops.mean(losses, axis=-1)


class BitsPerToken(keras.metrics.Mean):
    def __init__(self, name="bits_per_token", **kwargs):
        super().__init__(name=name, **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        return super().update_state(token_cross_entropy(y_true, y_pred) / math.log(2), sample_weight)


class Perplexity(keras.metrics.Mean):
    """exp(mean cross-entropy per token) over the evaluated tokens."""

    def __init__(self, name="perplexity", **kwargs):
        super().__init__(name=name, **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        return super().update_state(token_cross_entropy(y_true, y_pred), sample_weight)

    def result(self):
        return keras.ops.exp(super().result())


def rotary(x, base=10000.0):
    """Rotary position embedding (RoFormer, Su et al. 2021) of [batch, length, heads, depth] queries or keys: the
    two halves of each head's depth are rotated by position-dependent angles, so a query-key product depends on
    their distance and no position table has to be learned."""
    length, depth = keras.ops.shape(x)[1], x.shape[-1]
    half = depth // 2
    frequencies = base ** (-np.arange(half, dtype="float32") / half)
    angles = keras.ops.arange(length, dtype="float32")[:, None] * frequencies[None, :]  # [length, half]
    cos = keras.ops.cast(keras.ops.cos(angles), x.dtype)[None, :, None, :]
    sin = keras.ops.cast(keras.ops.sin(angles), x.dtype)[None, :, None, :]
    first, second = x[..., :half], x[..., half:]
    return keras.ops.concatenate([first * cos - second * sin, second * cos + first * sin], axis=-1)


class CausalSelfAttention(keras.layers.Layer):
    """Causal multi-head self-attention with rotary positions and 2-D [width, width] query/key/value/output kernels
    (heads are column blocks), so Muon can orthogonalize each projection; the variable paths (`…/query/kernel`, …)
    are those of keras.layers.MultiHeadAttention, which the model-parallel layout rules match. The output
    projection starts at zero, so each block starts as the identity on the residual stream."""

    def __init__(self, heads, width, **kwargs):
        super().__init__(**kwargs)
        self.heads, self.width = heads, width
        self.query, self.key, self.value = (keras.layers.Dense(width, name=name) for name in ("query", "key", "value"))
        self.attention_output = keras.layers.Dense(width, kernel_initializer="zeros", name="attention_output")

    def build(self, input_shape):
        for projection in (self.query, self.key, self.value, self.attention_output):
            projection.build(input_shape)

    def call(self, x):
        batch, length = keras.ops.shape(x)[0], keras.ops.shape(x)[1]

        def by_head(projection):  # [batch, length, width] -> [batch, length, heads, width / heads]
            return keras.ops.reshape(projection(x), (batch, length, self.heads, self.width // self.heads))

        attended = keras.ops.dot_product_attention(rotary(by_head(self.query)), rotary(by_head(self.key)),
                                                   by_head(self.value), is_causal=True)
        return self.attention_output(keras.ops.reshape(attended, (batch, length, self.width)))

    def get_config(self):
        return {**super().get_config(), "heads": self.heads, "width": self.width}


class SoftCap(keras.layers.Layer):
    """`cap * tanh(logits / cap)`: logits kept within ±cap (Gemma 2, modded-nanogpt), so early steps cannot push a
    character's probability to extremes; near zero it is the identity."""

    def __init__(self, cap, **kwargs):
        super().__init__(**kwargs)
        self.cap = cap

    def call(self, logits):
        return keras.ops.tanh(logits / self.cap) * self.cap

    def get_config(self):
        return {**super().get_config(), "cap": self.cap}


def build_gpt(config, spec, layers=4, heads=4, width=128, logit_cap=15.0):
    """Pre-norm decoder-only transformer (causal self-attention with rotary positions + 4x MLP per block; the
    projections back into the residual stream start at zero), with the token embedding normalised before the first
    block and the logits soft-capped at ±`logit_cap`. `--dropout` (none by default): on the embedding and on each
    block's two contributions to the residual stream, as nanoGPT's `dropout`."""
    rate = dropout_rate(config, 0.0)

    def dropped(x, name):  # no layer at all without dropout: the model (and its checkpoints) stay as they were
        return keras.layers.Dropout(rate, name=name)(x) if rate else x

    tokens = keras.Input((spec["sequence_length"],), dtype="int32", name="tokens")
    # float32 whatever the policy: under bfloat16 the lookup's gradient (a scatter-add of every token's row into
    # the ~66-row table) summed in bfloat16 loses digits and, on GPUs, runs as contended 16-bit atomics; the norm
    # after it computes in the policy's dtype again.
    x = keras.layers.Embedding(spec["vocabulary_size"], width, name="token_embedding", dtype="float32",
                               embeddings_initializer=keras.initializers.RandomNormal(stddev=0.02))(tokens)
    x = dropped(keras.layers.LayerNormalization(epsilon=1e-5, name="embedding_norm")(x), "embedding_dropout")
    for i in range(layers):
        h = keras.layers.LayerNormalization(epsilon=1e-5, name=f"block{i}_norm1")(x)
        h = dropped(CausalSelfAttention(heads, width, name=f"block{i}_attention")(h), f"block{i}_dropout1")
        x = keras.layers.Add(name=f"block{i}_residual1")([x, h])
        h = keras.layers.LayerNormalization(epsilon=1e-5, name=f"block{i}_norm2")(x)
        h = keras.layers.Dense(4 * width, activation="gelu", name=f"block{i}_mlp1")(h)
        h = dropped(keras.layers.Dense(width, kernel_initializer="zeros", name=f"block{i}_mlp2")(h),
                    f"block{i}_dropout2")
        x = keras.layers.Add(name=f"block{i}_residual2")([x, h])
    x = keras.layers.LayerNormalization(epsilon=1e-5, name="final_norm")(x)
    logits = keras.layers.Dense(spec["vocabulary_size"], name="logits")(x)
    return keras.Model(tokens, SoftCap(logit_cap, name="logit_cap")(logits), name="gpt")


def build_gpt_small(config, spec):
    return build_gpt(config, spec, layers=6, heads=6, width=384)


def build_lstm(config, spec, width=256):
    tokens = keras.Input((spec["sequence_length"],), dtype="int32", name="tokens")
    x = keras.layers.Embedding(spec["vocabulary_size"], 128, name="token_embedding", dtype="float32")(tokens)
    x = keras.layers.LSTM(width, return_sequences=True, name="lstm")(x)
    x = keras.layers.Dropout(dropout_rate(config, 0.0), name="dropout")(x) if dropout_rate(config, 0.0) else x
    return keras.Model(tokens, keras.layers.Dense(spec["vocabulary_size"], name="logits")(x), name="char_lstm")


def transformer_flops(model, spec, config):
    """Forward + backward FLOPs per step of a `gpt` by the usual formula (Kaplan et al. 2020; PaLM, Chowdhery et
    al. 2022, appendix B): 6·N per token for the N weights of its matmuls (the token lookup is not one) and
    12·layers·width·context per token for attention's two [context x context] products (computed in full, causal
    or not); None for models without attention."""
    attention = [layer for layer in model.layers if isinstance(layer, CausalSelfAttention)]
    if not attention:
        return None
    weights = sum(int(np.prod(v.shape)) for v in model.trainable_variables if v.path.endswith("/kernel"))
    context = spec["sequence_length"]
    tokens = config.batch_size * context
    return 6.0 * weights * tokens + 12.0 * len(attention) * attention[0].width * context * tokens


def baselines(source, config):
    """Cross-entropy (nats per token) on the test split of add-one-smoothed unigram and bigram models counted on
    the train split."""
    del config
    spec = source.spec
    ids, size = spec["token_ids"], spec["vocabulary_size"]
    train, test = ids[spec["train_start"]:spec["train_end"]], ids[:spec["train_start"]]
    unigram = (np.bincount(train, minlength=size) + 1.0) / (len(train) + size)
    pairs = np.zeros((size, size))
    np.add.at(pairs, (train[:-1], train[1:]), 1.0)
    bigram = (pairs + 1.0) / (pairs.sum(axis=1, keepdims=True) + size)
    return {"unigram_loss": float(-np.mean(np.log(unigram[test]))),
            "bigram_loss": float(-np.mean(np.log(bigram[test[:-1], test[1:]])))}


def serving(model, spec):
    """serving_default: raw strings [batch] -> log-probabilities [batch, vocabulary] of the next character (a
    text shorter than the context is read as if blank lines came before it) and that character; generate: a
    prompt -> the prompt and `max_new_tokens` characters sampled at `temperature` (seeded: the same seed gives
    the same text)."""
    vocabulary, length = spec["vocabulary"], spec["sequence_length"]
    lookup = keras.layers.StringLookup(vocabulary=vocabulary, num_oov_indices=1)  # 0 = out of vocabulary, as adapt
    characters = tf.constant(["", *vocabulary])
    pad = vocabulary.index("\n") + 1 if "\n" in vocabulary else 0

    def context(text):
        ids = tf.cast(lookup(tf.strings.unicode_split(text, "UTF-8")), tf.int32)  # ragged [batch, None]
        padded = tf.concat([tf.fill([tf.shape(text)[0], length], pad), ids], axis=1)
        return tf.reverse(tf.reverse(padded, [1]).to_tensor(pad)[:, :length], [1])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(text):
        logits = tf.cast(model(context(text), training=False)[:, -1], tf.float32)
        log_probabilities = tf.nn.log_softmax(logits)
        return {"log_probabilities": log_probabilities,
                "next_character": tf.gather(characters, tf.argmax(log_probabilities, axis=-1))}

    @tf.function(input_signature=[tf.TensorSpec([], tf.string, name="prompt"),
                                  tf.TensorSpec([], tf.int32, name="max_new_tokens"),
                                  tf.TensorSpec([], tf.float32, name="temperature"),
                                  tf.TensorSpec([], tf.int32, name="seed")])
    def generate(prompt, max_new_tokens, temperature, seed):
        def step(i, window, sampled):
            logits = tf.cast(model(window[None], training=False)[0, -1], tf.float32)
            logits = logits / tf.maximum(temperature, 1e-3)
            token = tf.cast(tf.random.stateless_categorical(logits[None], 1, seed=tf.stack([seed, i]))[0, 0],
                            tf.int32)
            return i + 1, tf.concat([window[1:], token[None]], axis=0), sampled.write(i, token)

        start = context(prompt[None])[0]
        _, _, sampled = tf.while_loop(lambda i, *_: i < max_new_tokens, step,
                                      [tf.constant(0), start, tf.TensorArray(tf.int32, size=max_new_tokens)])
        return {"text": prompt + tf.strings.reduce_join(tf.gather(characters, sampled.stack()))}

    return {"serving_default": serve, "generate": generate, "_keep": [lookup]}


# --model_parallel: Megatron-style splits of the transformer on the `model` axis. Attention: query/key/value
# kernels [width, width] by output column (= by head: heads are column blocks), the output projection by input row
# (= by head); MLP: the first kernel by output column, the second by input row (one all-reduce per block half);
# embeddings by width.
GPT_LAYOUT = {
    r"attention[/_](query|key|value)[/_]kernel": (None, "model"),
    r"attention[/_](query|key|value)[/_]bias": ("model",),
    r"attention[/_]attention_output[/_]kernel": ("model", None),
    r"mlp1[/_]kernel": (None, "model"),
    r"mlp1[/_]bias": ("model",),
    r"mlp2[/_]kernel": ("model", None),
    r"token_embedding[/_]embeddings": (None, "model"),
}


def metrics():
    return [BitsPerToken(), Perplexity(), keras.metrics.SparseCategoricalAccuracy(name="accuracy")]


TASK = Task(
    name="language_model",
    description="next-character language model on one text stream: embedded:shakespeare, corpus:PATH (glob)",
    default_data="embedded:shakespeare",
    models={"gpt": build_gpt, "gpt_small": build_gpt_small, "lstm": build_lstm},
    loss=lambda: token_cross_entropy,
    metrics=metrics,
    main_metric="loss",
    main_metric_mode="min",
    preprocess=None,
    vectorized_preprocess=True,
    serving=serving,
    # Measured (2-core CPU, docs/tasks.md#language-model): Muon reaches val loss 1.88 in ~350 steps of 16 x 64
    # characters (~0.36M; three seeds: 1.84-1.85 at step 350 with the normalised embedding, the logit cap and
    # 6e-3; 1.86-1.89 without them at 4e-3), nanoGPT's CPU recipe (AdamW, batch 12, lr 1e-3) needs 2,000
    # iterations of 12 x 64 (1.5M) for 1.88. Evaluations every 175 steps land on the crossing. 10 warm-up steps:
    # with zero-initialised projections and learned positions, 50 gave 0.008-0.015 more at steps 400-500.
    defaults={"batch_size": 16, "train_steps": 1000, "eval_every": 175, "learning_rate": 6e-3, "optimizer": "muon",
              "lr_schedule": "cosine", "warmup_steps": 10, "sequence_length": 64,
              "test_fraction": 0.05},  # the first 5% of the text (pipelines/corpus.py)
    smoke={"batch_size": 32, "train_steps": 20, "eval_every": 10, "autotune_seconds": 0.5},
    adapt=adapt,
    preprocess_for=preprocess_for,
    baselines=baselines,
    layout_rules=GPT_LAYOUT,
    # XLA per step, measured on `gpt` (2-core CPU, docs/tasks.md#language-model): ~130 against ~185 ms per Muon
    # step at batch 16; its compile (~7 s more than the plain trace) pays back after ~150 of the run's 1,000 steps.
    # `gpt_small` (the same blocks, wider) is included by analogy, not measured.
    xla_models=("gpt", "gpt_small"),
    x_axis=lambda spec, config: ("characters (tokens) seen", config.batch_size * spec["sequence_length"]),
    reference_flops=transformer_flops,
)
