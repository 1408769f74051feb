"""In-memory arrays -> `Source`: a seeded train/test split of `x, y` arrays, as tf.data of {"x", "y"} dicts
(and "sample_weight", for splits given as `(x, y, sample_weight)`).

    python -c "import numpy as np, pipelines.arrays as a; print(a.from_arrays('toy', np.zeros((10, 3)), np.arange(10)))"

`x` is an array, or a dict of equally long arrays (table columns).
"""
import numpy as np
import tensorflow as tf

from pipelines.source import DataError, Source


def num_rows(x):
    return len(next(iter(x.values()))) if isinstance(x, dict) else len(x)


def take_rows(x, index):
    return {k: v[index] for k, v in x.items()} if isinstance(x, dict) else x[index]


def split_indices(num_examples, test_fraction, seed):
    """A seeded permutation cut into (train, test) index arrays; test gets round(n * fraction) examples."""
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"--test_fraction must be in (0, 1), got {test_fraction}")
    order = np.random.default_rng(seed).permutation(num_examples)
    num_test = int(round(num_examples * test_fraction))
    if num_test == 0 or num_test == num_examples:
        raise DataError(f"{num_examples} examples with test_fraction={test_fraction} leave an empty split")
    return order[num_test:], order[:num_test]


def _array_spec(array):
    return tuple(array.shape[1:]), ("string" if array.dtype.kind in "USO" else array.dtype.name)


def _spec(x, y):
    features = {k: _array_spec(np.asarray(v)) for k, v in x.items()} if isinstance(x, dict) \
        else {"x": _array_spec(np.asarray(x))}
    spec = {"features": features, "label": _array_spec(np.asarray(y))}
    if np.issubdtype(np.asarray(y).dtype, np.integer) and np.asarray(y).ndim == 1:
        spec["num_classes"] = int(np.max(y)) + 1
    return spec


def _columns(parts):
    """{"x", "y"} (and "sample_weight" when `parts` has a third array) of one split's (x, y[, sample_weight])."""
    columns = {"x": parts[0], "y": parts[1]}
    if len(parts) == 3:
        columns["sample_weight"] = np.asarray(parts[2], np.float32)
    return columns


def from_split_arrays(name, splits, spec_extra=None):
    """`splits`: {"train": (x, y), "test": (x, y)} -> Source; checks that x and y lengths agree. A split may be
    (x, y, sample_weight): its examples then carry a per-example weight for the loss and the metrics."""
    for split, (x, y, *_) in splits.items():  # sample weights are checked where they are read (python_source.pair)
        if num_rows(x) != len(y):
            raise DataError(f"{name}: split {split!r} has {num_rows(x)} inputs but {len(y)} labels")
    spec = _spec(*splits["train"][:2])
    x_train = splits["train"][0]
    if isinstance(x_train, dict):  # per-column train statistics, for normalisation inside models
        spec["feature_stats"] = {k: [float(np.mean(v)), float(np.var(v))] for k, v in x_train.items()
                                 if np.asarray(v).dtype.kind in "fiu"}
    elif np.asarray(x_train).dtype.kind in "fiu":
        spec["x_max"] = float(np.max(x_train))  # value range, e.g. 16 for digits, 255 for 8-bit images
        spec["signal_stats"] = [float(np.mean(x_train)), float(np.var(x_train))]
        if np.asarray(x_train).ndim == 2:  # a feature matrix: per-column statistics as f0, f1, …
            spec["feature_stats"] = {f"f{i}": [float(np.mean(c)), float(np.var(c))] for i, c in enumerate(x_train.T)}
    y_train = np.asarray(splits["train"][1])
    if y_train.dtype.kind in "fiu" and y_train.ndim == 1:
        spec["label_stats"] = [float(np.mean(y_train)), float(np.var(y_train))]
    if "num_classes" in spec:
        spec["num_classes"] = int(max(np.max(parts[1]) for parts in splits.values())) + 1
    spec.update(spec_extra or {})

    def make(columns):
        return lambda: tf.data.Dataset.from_tensor_slices(columns)

    columns = {split: _columns(parts) for split, parts in splits.items()}
    return Source(
        name=name,
        splits={split: make(split_columns) for split, split_columns in columns.items()},
        num_examples={split: len(parts[1]) for split, parts in splits.items()},
        spec=spec,
        arrays=columns,
    )


def from_arrays(name, x, y, test_fraction=0.2, seed=0, spec_extra=None):
    """One pair of arrays (x may be a dict of columns) -> Source with a seeded `test_fraction` test split."""
    if num_rows(x) != len(y):
        raise DataError(f"{name}: {num_rows(x)} inputs but {len(y)} labels")
    try:
        train, test = split_indices(len(y), test_fraction, seed)
    except DataError as error:
        raise DataError(f"{name}: {error}") from None
    return from_split_arrays(name, {"train": (take_rows(x, train), y[train]), "test": (take_rows(x, test), y[test])},
                             spec_extra)
