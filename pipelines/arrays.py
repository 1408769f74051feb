"""In-memory arrays -> `Source`: a seeded train/test split of `x, y` arrays, as tf.data of {"x", "y"} dicts.

    python -c "import numpy as np, pipelines.arrays as a; print(a.from_arrays('toy', np.zeros((10, 3)), np.arange(10)))"
"""
import numpy as np
import tensorflow as tf

from pipelines.source import DataError, Source


def split_indices(num_examples, test_fraction, seed):
    """A seeded permutation cut into (train, test) index arrays; test gets round(n * fraction) examples."""
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"--test_fraction must be in (0, 1), got {test_fraction}")
    order = np.random.default_rng(seed).permutation(num_examples)
    num_test = int(round(num_examples * test_fraction))
    if num_test == 0 or num_test == num_examples:
        raise DataError(f"{num_examples} examples with test_fraction={test_fraction} leave an empty split")
    return order[num_test:], order[:num_test]


def _spec(x, y):
    spec = {"features": {"x": (tuple(x.shape[1:]), x.dtype.name)}, "label": (tuple(y.shape[1:]), y.dtype.name)}
    if np.issubdtype(y.dtype, np.integer) and y.ndim == 1:
        spec["num_classes"] = int(y.max()) + 1
    return spec


def from_split_arrays(name, splits):
    """`splits`: {"train": (x, y), "test": (x, y)} -> Source; checks that x and y lengths agree."""
    for split, (x, y) in splits.items():
        if len(x) != len(y):
            raise DataError(f"{name}: split {split!r} has {len(x)} inputs but {len(y)} labels")
    x_train, y_train = splits["train"]
    spec = _spec(np.asarray(x_train), np.asarray(y_train))
    all_labels = np.concatenate([np.asarray(y) for _, y in splits.values()])
    if "num_classes" in spec:
        spec["num_classes"] = int(all_labels.max()) + 1

    def make(x, y):
        return lambda: tf.data.Dataset.from_tensor_slices({"x": x, "y": y})

    return Source(
        name=name,
        splits={split: make(x, y) for split, (x, y) in splits.items()},
        num_examples={split: len(x) for split, (x, _) in splits.items()},
        spec=spec,
    )


def from_arrays(name, x, y, test_fraction=0.2, seed=0):
    """One pair of arrays -> Source with a seeded `test_fraction` test split."""
    if len(x) != len(y):
        raise DataError(f"{name}: {len(x)} inputs but {len(y)} labels")
    train, test = split_indices(len(x), test_fraction, seed)
    return from_split_arrays(name, {"train": (x[train], y[train]), "test": (x[test], y[test])})
