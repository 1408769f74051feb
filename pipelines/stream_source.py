"""A user's `tf.data.Dataset` as a `Source` that streams: its examples are read per batch as training runs, never
gathered into memory (`pipelines.python_source` reads a dataset into memory when it fits in `IN_MEMORY_BYTES`, and
hands larger ones, or any with `stream=True`, to `from_datasets`).

    python -c "import tensorflow as tf, pipelines.stream_source as s, pipelines as p; d = tf.data.Dataset.range(100).map(lambda i: (tf.fill([3], tf.cast(i, tf.float32)), i % 2)); print(s.from_datasets('toy', {'train': d}, p.LoadOptions()).spec)"

Each split is a finite dataset of unbatched `(x, y)` or `(x, y, sample_weight)` examples (`x` a tensor or a dict of
them) of one shape. The source reads every split once, in one pass of large batches, for what it must know up front:
its number of examples (when the dataset does not know it), the largest integer label (`num_classes`) and the train
split's statistics (`x_max`, `signal_stats`, `feature_stats`, `label_stats`: what the built-in models normalise
with). Without a test split, `test_fraction` of the train examples is held out by position (seeded), the same rows
on every run; float64 becomes float32, as `fit` does.
"""
import numpy as np
import tensorflow as tf

from pipelines import arrays
from pipelines.source import DataError, Source

PASS_BATCH = 1024  # examples per batch of the counting pass
_plain = tf.autograph.experimental.do_not_convert  # plain TF functions: no AutoGraph conversion to pay for


def _example(spec):
    """The map from a `(x, y[, sample_weight])` element to tfapp's example dict."""
    def cast(value):
        return tf.cast(value, tf.float32) if value.dtype == tf.float64 else value

    def to_dict(x, y, *weight):
        example = {"x": tf.nest.map_structure(cast, x), "y": cast(y)}
        if weight:
            example["sample_weight"] = tf.cast(weight[0], tf.float32)
        return example
    return to_dict


def element_spec(name, dataset):
    """The element spec of a finite dataset of `(x, y)` or `(x, y, sample_weight)` examples; DataError otherwise."""
    if dataset.cardinality() == tf.data.INFINITE_CARDINALITY:
        raise DataError(f"{name}: the dataset repeats forever; give one pass of the examples (tfapp repeats it)")
    spec = dataset.element_spec
    if not isinstance(spec, tuple) or len(spec) not in (2, 3):
        raise DataError(f"{name}: expected a dataset of unbatched (x, y) or (x, y, sample_weight) examples, got "
                        f"elements {spec}")
    return spec


def _check(name, dataset, arity=None):
    spec = element_spec(name, dataset)
    if arity is not None and len(spec) != arity:
        raise DataError(f"{name}: its examples have {len(spec)} parts, the train split's {arity}")
    for leaf in tf.nest.flatten(spec):
        if not leaf.shape.is_fully_defined():
            raise DataError(f"{name}: examples of varying shape ({leaf.shape}); pad them to one shape in the dataset")
    if len(spec) == 3 and (spec[2].shape.rank != 0 or not (spec[2].dtype.is_floating or spec[2].dtype.is_integer)):
        raise DataError(f"{name}: sample weights must be one number per example, got {spec[2]}")
    return dataset.map(_plain(_example(spec)), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _numeric(spec):
    return spec.dtype.is_floating or spec.dtype.is_integer


def _figures(examples):
    """One pass over a split's example dicts: {"count", "label_max", sums for the statistics} as numpy values."""
    spec = examples.element_spec
    x_spec, y_spec = spec["x"], spec["y"]
    columns = x_spec if isinstance(x_spec, dict) else {"x": x_spec}
    numeric = {k: s for k, s in columns.items() if _numeric(s)}
    integer_label = y_spec.dtype.is_integer and y_spec.shape.rank == 0

    def per_column(value, keep_last):  # sums over examples (and, unless keep_last, every other axis)
        value = tf.cast(value, tf.float64)
        axes = list(range(value.shape.rank - (1 if keep_last else 0)))
        return tf.reduce_sum(value, axes), tf.reduce_sum(tf.square(value), axes)

    matrix = not isinstance(x_spec, dict) and "x" in numeric and x_spec.shape.rank == 1

    def init():
        state = {"count": tf.constant(0, tf.int64), "label_max": tf.constant(-1, tf.int64),
                 "y": (tf.constant(0.0, tf.float64),) * 2,
                 "x_max": tf.constant(-np.inf, tf.float64)}
        for k, s in numeric.items():
            state[f"x/{k}"] = (tf.constant(0.0, tf.float64),) * 2
        if matrix:
            state["columns"] = (tf.zeros(x_spec.shape, tf.float64),) * 2
        return state

    def add(state, batch):
        x = batch["x"] if isinstance(x_spec, dict) else {"x": batch["x"]}
        new = {"count": state["count"] + tf.shape(batch["y"], out_type=tf.int64)[0]}
        new["label_max"] = tf.maximum(state["label_max"], tf.reduce_max(tf.cast(batch["y"], tf.int64))) \
            if integer_label else state["label_max"]
        y_sums = per_column(batch["y"], False) if _numeric(y_spec) else (tf.constant(0.0, tf.float64),) * 2
        new["y"] = tuple(a + b for a, b in zip(state["y"], y_sums))
        new["x_max"] = tf.maximum(state["x_max"], tf.reduce_max(tf.cast(x["x"], tf.float64))) \
            if "x" in numeric and not isinstance(x_spec, dict) else state["x_max"]
        for k in numeric:
            new[f"x/{k}"] = tuple(a + b for a, b in zip(state[f"x/{k}"], per_column(x[k], False)))
        if matrix:
            new["columns"] = tuple(a + b for a, b in zip(state["columns"], per_column(x["x"], True)))
        return new

    figures = tf.nest.map_structure(lambda t: t.numpy(), examples.batch(PASS_BATCH).reduce(init(), _plain(add)))
    figures["values_per_example"] = {k: max(1, int(np.prod(s.shape))) for k, s in numeric.items()}
    return figures


def _mean_var(sums, count):
    total, squares = (np.asarray(s, np.float64) for s in sums)
    mean = total / count
    return mean, np.maximum(squares / count - mean ** 2, 0.0)


def _spec(examples, figures):
    """The spec `arrays.from_split_arrays` gives in-memory rows, from the train split's element spec and figures."""
    element = examples.element_spec

    def entry(spec):
        return tuple(spec.shape), "string" if spec.dtype == tf.string else spec.dtype.name

    x_spec, y_spec = element["x"], element["y"]
    spec = {"features": {k: entry(s) for k, s in x_spec.items()} if isinstance(x_spec, dict)
            else {"x": entry(x_spec)}, "label": entry(y_spec)}
    count = figures["count"]
    if isinstance(x_spec, dict):
        spec["feature_stats"] = {}
        for k in x_spec:
            if f"x/{k}" in figures:
                mean, var = _mean_var(figures[f"x/{k}"], count * figures["values_per_example"][k])
                spec["feature_stats"][k] = [float(mean), float(var)]
    elif "x/x" in figures:
        spec["x_max"] = float(figures["x_max"])
        mean, var = _mean_var(figures["x/x"], count * figures["values_per_example"]["x"])
        spec["signal_stats"] = [float(mean), float(var)]
        if "columns" in figures:
            means, variances = _mean_var(figures["columns"], count)
            spec["feature_stats"] = {f"f{i}": [float(m), float(v)] for i, (m, v) in enumerate(zip(means, variances))}
    if y_spec.shape.rank == 0 and (y_spec.dtype.is_floating or y_spec.dtype.is_integer):
        mean, var = _mean_var(figures["y"], count)
        spec["label_stats"] = [float(mean), float(var)]
    return spec


def _positions(make, keep):
    """The examples of `make()` whose position is True in `keep` (the dataset's order is fixed)."""
    table = tf.constant(keep)
    return lambda: make().enumerate().filter(_plain(lambda i, _: tf.gather(table, i))).map(
        _plain(lambda _, example: example))


def _count(examples):
    known = int(examples.cardinality())
    return known if known >= 0 else int(examples.reduce(np.int64(0), _plain(lambda count, _: count + 1)))


def from_datasets(name, datasets, options):
    """A streaming Source of `datasets` {"train": dataset, and optionally "validation", "test"}."""
    train = datasets["train"]
    arity = len(train.element_spec) if isinstance(train.element_spec, tuple) else None
    examples = {split: _check(f"{name} {split}", dataset, arity) for split, dataset in datasets.items()}
    splits = {split: (lambda e=e: e) for split, e in examples.items()}
    counts = {}
    if "test" not in examples:
        total = _count(examples["train"])
        try:
            keep, held_out = arrays.split_indices(total, options.test_fraction, options.seed)
        except DataError as error:
            raise DataError(f"{name}: {error}") from None
        in_test = np.zeros(total, bool)
        in_test[held_out] = True
        splits["train"], splits["test"] = _positions(splits["train"], ~in_test), _positions(splits["train"], in_test)
    figures = {split: _figures(make()) for split, make in splits.items()}
    for split, split_figures in figures.items():
        counts[split] = int(split_figures["count"])
        if not counts[split]:
            raise DataError(f"{name} {split}: the dataset is empty")
    spec = _spec(examples["train"], figures["train"])
    label_max = max(int(f["label_max"]) for f in figures.values())
    if label_max >= 0:
        spec["num_classes"] = label_max + 1
    return Source(name=name, splits=splits, num_examples=counts, spec=spec, arrays=None)
