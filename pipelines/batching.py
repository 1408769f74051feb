"""Train and eval transforms: shard per input pipeline, shuffle, repeat, map, per-replica batch, prefetch.

    python -c "import pipelines as p; s = p.load('embedded:digits'); print(p.train_dataset(s.splits['train'], lambda e: (e['x'], e['y']), 64, seed=0).element_spec)"

Both take the `tf.distribute.InputContext` handed to `strategy.distribute_datasets_from_function`: each input
pipeline (one per host) reads its own shard and batches with the per-replica batch size. With
`vectorized=True` (a task whose preprocess works on whole batches) the map runs once per batch after `batch`
instead of once per example, which otherwise competes with the model for the CPU (`benchmarks/pipeline_speed.py`).
In-memory arrays are gathered and preprocessed a block of up to 64 batches per map call (`block_batches`), then
split again in the same order (docs/performance.md#figures-behind-the-code). A vectorized preprocess must therefore
treat rows independently. Batches keep a static
shape (`drop_remainder=True`), as TPUs and XLA need. The eval set is padded to whole global batches with
weight-0 examples instead of being cut, so every test example counts exactly once. For an engine that keeps
in-memory rows on its devices (the JAX loop), `preprocess_rows` preprocesses them all once and `index_blocks` hands
over only row indices, in the gather path's order.
"""
import math

import numpy as np
import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE
MAX_BLOCK = 64  # in-memory arrays: at most this many batches gathered and preprocessed per map call
BLOCK_BYTES = 32 << 20  # … and at most ~32 MiB of rows per block (raw bytes ×4 for what preprocess adds)
INDEX_BLOCK = 256  # batches of row indices per block (index_blocks)
# Pipelines run without tf.data's autotuning thread: deleting an iterator whose tuning ran a while blocks until
# that thread's next wake-up, which comes ever later the longer it ran (TF 2.21: the validation iterator at the
# end of a run, the training iterator when the loops end, autotune's own iterator; figures in
# docs/performance.md#figures-behind-the-code). AUTOTUNE then means one map call per core and a self-sizing
# prefetch, which is what these one-map pipelines need.
_OPTIONS = tf.data.Options()
_OPTIONS.autotune.enabled = False
# The functions this module maps are traced as written, not converted by AutoGraph: a task's preprocess is plain
# TensorFlow ops without Python control flow on tensors (use tf.cond/tf.where), and converting it was most of the
# time a pipeline took to build (docs/performance.md#figures-behind-the-code).
_as_written = tf.autograph.experimental.do_not_convert


def _context(input_context):
    return input_context or tf.distribute.InputContext()


def per_replica_batch_size(global_batch_size, input_context=None):
    """The batch one replica sees; raises ValueError when the global batch does not split evenly."""
    context = _context(input_context)
    replicas = context.num_replicas_in_sync
    if global_batch_size % replicas:
        raise ValueError(f"--batch_size={global_batch_size} (global) is not divisible by {replicas} replicas")
    return global_batch_size // replicas


def _shard(dataset, context):
    if context.num_input_pipelines > 1:
        dataset = dataset.shard(context.num_input_pipelines, context.input_pipeline_id)
    return dataset


def cached(dataset, cache):
    """cache: "memory" (default), "none", or a file path prefix (tf.data file cache, e.g. on local disk)."""
    if cache == "none":
        return dataset
    return dataset.cache() if cache in ("memory", "", None) else dataset.cache(cache)


def _batches_to_skip(skip_steps, context):
    """Per-replica batches this input pipeline hands out in `skip_steps` global steps."""
    return skip_steps * (context.num_replicas_in_sync // context.num_input_pipelines)


def block_batches(arrays, batch):
    """Batches per block for in-memory `arrays` at per-replica `batch`: 64 for small rows (a table, digits),
    fewer for large ones (at batch 128: 20 for 784 floats, 21 for 32×32×3 bytes, 5 for 32×32×3 floats), never
    below 1. With XLA the loop runs a block's steps as one XLA program, so larger blocks also mean fewer XLA
    calls (docs/performance.md#figures-behind-the-code). The preprocess must treat rows
    independently, since it sees a whole block at once."""
    row_bytes = sum(np.asarray(a).dtype.itemsize * int(np.prod(np.shape(a)[1:])) for a in tf.nest.flatten(arrays))
    return int(max(1, min(MAX_BLOCK, BLOCK_BYTES // max(1, 4 * row_bytes * batch))))


def _augmented(preprocess, augment, batch=None):
    """preprocess(example) -> preprocess(example, position of its first row in the training stream) that also
    applies `augment(features, positions)`; `batch`: rows per example when the map runs on batches."""
    def apply(position, example):
        features, label, *weight = preprocess(example)  # (features, label) or (features, label, sample_weight)
        if augment is None:
            return (features, label, *weight)
        if batch is None:
            return (augment(features, position), label, *weight)
        rows = tf.shape(label, out_type=tf.int64)[0]  # a whole block of batches, or one batch
        return (augment(features, position * batch + tf.range(rows)), label, *weight)
    return _as_written(apply)


def _index_batches(num_examples, batch, seed, context, skip_steps):
    """(number of the batch in this pipeline's stream, [batch] example indices): shuffled, repeating, resumed."""
    indices = _shard(tf.data.Dataset.range(num_examples), context)
    indices = indices.shuffle(num_examples, seed=seed + context.input_pipeline_id, reshuffle_each_iteration=True)
    skip = _batches_to_skip(skip_steps, context)
    return indices.repeat().batch(batch, drop_remainder=True).skip(skip).enumerate(start=skip)


def index_blocks(arrays, global_batch_size, seed, input_context=None, skip_steps=0, block=INDEX_BLOCK):
    """Endless int32 blocks [block, batch] of row indices into `arrays`, batches in exactly the order
    `train_dataset(arrays=…)` gathers them: for an engine that keeps the preprocessed rows (`preprocess_rows`) on
    its devices and gathers each batch there, so no rows cross from tf.data per step. Blocks are large since
    they are small: every fetch from tf.data, however cheap, stalls a step that keeps all cores busy."""
    context = _context(input_context)
    batch = per_replica_batch_size(global_batch_size, context)
    indices = _index_batches(len(arrays["y"]), batch, seed, context, skip_steps)
    indices = indices.map(_as_written(lambda _, index: tf.cast(index, tf.int32)))
    return indices.batch(block, drop_remainder=True).prefetch(2).with_options(_OPTIONS)


def preprocess_rows(arrays, preprocess):
    """(features, label) of every row of in-memory `arrays` as numpy, from one call of a vectorized `preprocess`
    (which treats rows independently, so this equals preprocessing them batch by batch)."""
    packed, unpack = pack_columns(arrays)
    rows = preprocess(unpack(tf.nest.map_structure(tf.convert_to_tensor, packed)))
    return tf.nest.map_structure(lambda tensor: tensor.numpy(), rows)


def _gathered_batches(arrays, preprocess, batch, seed, context, skip_steps=0, blocks=False, augment=None):
    """In-memory arrays: shuffle and batch example *indices*, then gather whole batches (one op per batch)."""
    indices = _index_batches(len(arrays["y"]), batch, seed, context, skip_steps)
    # Blocks of `size` batches: one gather + preprocess call per block, then split into batches again (unbatch of
    # the leading axis is one slice per batch). The order of batches is the same as batch by batch.
    size = block_batches(arrays, batch)
    indices = indices.batch(size, drop_remainder=True)
    packed, unpack = pack_columns(arrays)
    apply = _augmented(preprocess, augment, batch)
    # from_tensors hands the arrays to the dataset as inputs (not graph constants); repeat() does not copy them.
    tables = tf.data.Dataset.from_tensors(tf.nest.map_structure(tf.convert_to_tensor, packed)).repeat()

    def block(numbered, table):
        first_batch, index = numbered[0][0], numbered[1]  # the block's batches are consecutive in the stream
        rows = apply(first_batch, unpack(tf.nest.map_structure(lambda a: tf.gather(a, tf.reshape(index, [-1])), table)))
        return tf.nest.map_structure(lambda t: tf.reshape(t, [size, batch, *t.shape[1:]]), rows)

    dataset = tf.data.Dataset.zip((indices, tables)).map(_as_written(block), num_parallel_calls=AUTOTUNE,
                                                         deterministic=True)
    return (dataset if blocks else dataset.unbatch()).prefetch(AUTOTUNE).with_options(_OPTIONS)


def pack_columns(arrays):
    """Table columns (a dict `x` of 1-D arrays) of one dtype stacked into one [rows, k] matrix, so a batch is one
    gather per dtype instead of one per column (a 10-column CSV: 3 gathers instead of 11). Returns the packed
    arrays and the function that turns a gathered batch back into {"x": {column: [batch]}, "y"}."""
    x = arrays["x"]
    if not isinstance(x, dict) or len(x) < 2 or any(np.ndim(v) != 1 for v in x.values()):
        return arrays, lambda batch: batch
    groups = {}
    for name in x:
        groups.setdefault(np.asarray(x[name]).dtype.str, []).append(name)
    packed = {dtype: np.stack([np.asarray(x[name]) for name in names], axis=1) for dtype, names in groups.items()}

    def unpack(batch):
        columns = {name: batch["x"][dtype][:, i] for dtype, names in groups.items() for i, name in enumerate(names)}
        return {**batch, "x": {name: columns[name] for name in x}}

    return {**arrays, "x": packed}, unpack


def train_dataset(make_split, preprocess, global_batch_size, seed, input_context=None, shuffle_buffer=10_000,
                  cache="memory", vectorized=False, arrays=None, skip_steps=0, blocks=False, augment=None):
    """Endless, shuffled, per-replica batches of `preprocess(example)` = (features, label), or (features, label,
    sample_weight) for data with weights (the loops weigh the loss and the metrics by it).

    `arrays` ({"x", "y"} in memory) with a vectorized preprocess takes the gather-by-index path.
    `skip_steps`: resume the same seeded order after that many global steps; skipped batches are not
    preprocessed (the skip comes before the map). `blocks` (gather path only): yield the [K, batch, ...] blocks
    themselves (K = `block_batches(arrays, batch)`), for a loop that takes one block per K steps
    (`tfapp.loop.Trainer(block=K)`). `augment(features, positions)`: random training transforms keyed by each
    example's position in this pipeline's stream (`pipelines.augment`), so a resumed run draws what an
    uninterrupted one draws at the same step."""
    context = _context(input_context)
    batch = per_replica_batch_size(global_batch_size, context)
    skip = _batches_to_skip(skip_steps, context)
    if arrays is not None and vectorized:
        return _gathered_batches(arrays, preprocess, batch, seed, context, skip_steps, blocks, augment)
    if cache not in ("memory", "none", "", None):
        cache = f"{cache}-{context.input_pipeline_id}"  # one cache file per input pipeline
    dataset = cached(_shard(make_split(), context), cache)
    # One seed per input pipeline: hosts shuffle differently, and the same seed replays the same order.
    dataset = dataset.shuffle(shuffle_buffer, seed=seed + context.input_pipeline_id, reshuffle_each_iteration=True)
    dataset = dataset.repeat()
    if vectorized:
        dataset = dataset.batch(batch, drop_remainder=True).skip(skip).enumerate(start=skip)
        dataset = dataset.map(_augmented(preprocess, augment, batch), num_parallel_calls=AUTOTUNE, deterministic=True)
    else:
        dataset = dataset.skip(skip * batch).enumerate(start=skip * batch)
        dataset = dataset.map(_augmented(preprocess, augment), num_parallel_calls=AUTOTUNE, deterministic=True)
        dataset = dataset.batch(batch, drop_remainder=True)
    return dataset.prefetch(AUTOTUNE).with_options(_OPTIONS)


def padded_shard_size(num_examples, global_batch_size, context):
    """Examples each input pipeline yields after padding: the largest shard, rounded up to whole global batches
    of that pipeline (its per-replica batch times its replicas), so every host runs the same number of steps."""
    pipelines = context.num_input_pipelines
    per_pipeline_batch = global_batch_size // pipelines
    largest_shard = math.ceil(num_examples / pipelines)
    return max(1, math.ceil(largest_shard / per_pipeline_batch)) * per_pipeline_batch


def eval_steps(num_examples, global_batch_size, num_input_pipelines=1):
    """Distributed steps in one pass over an eval_dataset (equal on every input pipeline, thanks to padding)."""
    context = tf.distribute.InputContext(num_input_pipelines=num_input_pipelines)
    return padded_shard_size(num_examples, global_batch_size, context) // (global_batch_size // num_input_pipelines)


def eval_dataset(make_split, preprocess, global_batch_size, num_examples, input_context=None, vectorized=False,
                 repeat=False):
    """One pass of per-replica batches of (features, label, weight); weight is 0.0 on padding examples (times the
    data's own sample weight, where it has one).
    `repeat`: passes end to end, forever (cached after the first), for a loop that keeps one iterator and takes
    `eval_steps(…)` batches per evaluation instead of starting an iterator each time."""
    context = _context(input_context)
    batch = per_replica_batch_size(global_batch_size, context)
    shard = _shard(make_split(), context)
    shard_size = math.ceil((num_examples - context.input_pipeline_id) / context.num_input_pipelines)
    target = padded_shard_size(num_examples, global_batch_size, context)
    real = shard.map(_as_written(lambda example: (example, tf.constant(1.0))))
    # Padding: all-zero raw examples (so preprocess sees valid values) with weight 0.
    filler = make_split().take(1).map(_as_written(lambda example: (tf.nest.map_structure(tf.zeros_like, example),
                                                                   tf.constant(0.0))))
    dataset = real.concatenate(filler.repeat(target - max(shard_size, 0)))

    @_as_written
    def apply(example, weight):
        features, label, *sample_weight = preprocess(example)
        if sample_weight:  # the data's own weights, 0 on padding
            weight = tf.cast(sample_weight[0], tf.float32) * weight
        return features, label, weight

    if vectorized:
        dataset = dataset.batch(batch, drop_remainder=True).map(apply, num_parallel_calls=AUTOTUNE)
    else:
        dataset = dataset.map(apply, num_parallel_calls=AUTOTUNE).batch(batch, drop_remainder=True)
    dataset = dataset.cache()
    dataset = (dataset.repeat() if repeat else dataset).prefetch(AUTOTUNE)
    return dataset.with_options(_OPTIONS)

