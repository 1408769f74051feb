"""`py:pkg.module:function` — data from the user's own Python, and the objects `tfapp.fit` is given, as a `Source`.

    tfapp-train --task=classification --data=py:my_project.data:load    # load(options) or load() returns the data

The function (or `tfapp.fit`'s `train=`, `validation=`, `test=`) gives any of: a `pipelines.Source`; numpy arrays
`(x, y)` (`x` may be a dict of columns); a dict of arrays as in an .npz file (`x, y`, or `x_train, y_train, x_test,
y_test` and optionally `x_val, y_val`); a finite `tf.data.Dataset` of unbatched `(x, y)` examples (read into memory
once when it fits in `IN_MEMORY_BYTES`, else streamed: `pipelines.stream_source`; set `IN_MEMORY_BYTES = 0` to
always stream). `(x, y, sample_weight)` (arrays, or a dataset of such examples) weighs each example in the loss and the
metrics, as Keras `fit` does. Float64 arrays become float32 (as Keras `fit` does). Without a test split,
`test_fraction` of the train rows is held out (seeded), as for every other source.
"""
import importlib
import inspect

import numpy as np
import tensorflow as tf

from pipelines import arrays, npz, stream_source
from pipelines.source import DataError, Source

# A tf.data.Dataset up to this size is read into memory (the fast in-memory paths, e.g. rows kept on the devices);
# a larger one streams (pipelines.stream_source).
IN_MEMORY_BYTES = 1 << 30


def import_object(reference, shown):
    """The object named by "pkg.module:NAME" (NAME may be dotted); ValueError starting with `shown` (the flag as
    given, e.g. "--model=pkg.module:build") when the module cannot be imported or has no such name."""
    module_name, sep, name = reference.partition(":")
    if not sep or not module_name or not name:
        raise ValueError(f"{shown}: expected pkg.module:NAME")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # noqa: BLE001 - any failure of the user's module is reported in one line
        raise ValueError(f"{shown}: cannot import {module_name} ({type(error).__name__}: {error})") from None
    value = module
    for part in name.split("."):
        if not hasattr(value, part):
            raise ValueError(f"{shown}: {module_name} has no {name!r}")
        value = getattr(value, part)
    return value


def _float32(array):
    array = np.asarray(array)
    return array.astype(np.float32) if array.dtype == np.float64 else array


def _columns(x):
    return {k: _float32(v) for k, v in x.items()} if isinstance(x, dict) else _float32(x)


class _TooLarge(Exception):
    """The dataset holds more than IN_MEMORY_BYTES: it streams instead."""


def _row_bytes(spec):
    leaves = tf.nest.flatten(spec)
    if not all(leaf.shape.is_fully_defined() and leaf.dtype != tf.string for leaf in leaves):
        return None
    return sum(leaf.shape.num_elements() * leaf.dtype.size for leaf in leaves)


def dataset_arrays(name, dataset, limit=None):
    """(x, y) or (x, y, sample_weight) numpy arrays of a finite dataset of unbatched examples of that form; raises
    _TooLarge once its examples pass `limit` bytes (known up front when the dataset knows its size)."""
    spec = stream_source.element_spec(name, dataset)
    row_bytes = _row_bytes(spec)
    if limit is not None and row_bytes is not None and dataset.cardinality() >= 0 and \
            int(dataset.cardinality()) * row_bytes > limit:
        raise _TooLarge()
    rows, size = [], 0
    for row in dataset.as_numpy_iterator():
        rows.append(row)
        size += row_bytes if row_bytes is not None else sum(np.asarray(leaf).nbytes for leaf in tf.nest.flatten(row))
        if limit is not None and size > limit:
            raise _TooLarge()
    if not rows:
        raise DataError(f"{name}: the dataset is empty")
    x = tf.nest.map_structure(lambda *leaves: np.stack(leaves), *[row[0] for row in rows])
    return (x, *(np.stack([row[i] for row in rows]) for i in range(1, len(spec))))


def _stream(name, train, validation, test, options):
    """A streaming Source of the parts (arrays given beside a streamed dataset become datasets)."""
    def dataset(value):
        return value if isinstance(value, tf.data.Dataset) else tf.data.Dataset.from_tensor_slices(tuple(value))
    parts = {"train": train, "validation": validation, "test": test}
    return stream_source.from_datasets(name, {k: dataset(v) for k, v in parts.items() if v is not None}, options)


def pair(name, value):
    """(x, y) or (x, y, sample_weight) arrays of `value`: a tuple of arrays or a dataset of such examples."""
    if isinstance(value, tf.data.Dataset):
        value = dataset_arrays(name, value)
    if not isinstance(value, (tuple, list)) or len(value) not in (2, 3):
        raise DataError(f"{name}: expected (x, y) or (x, y, sample_weight) arrays or a tf.data.Dataset of such "
                        f"examples, got {type(value).__name__}")
    x, y = _columns(value[0]), _float32(value[1])
    if arrays.num_rows(x) != len(y):
        raise DataError(f"{name}: {arrays.num_rows(x)} inputs but {len(y)} labels")
    if len(value) == 2:
        return x, y
    weight = np.asarray(value[2])
    if weight.dtype.kind not in "fiub" or weight.shape != (len(y),):
        raise DataError(f"{name}: sample weights must be one number per example ({len(y)}), got "
                        f"{weight.dtype} of shape {weight.shape}")
    return x, y, weight.astype(np.float32)


def from_parts(name, train, options, validation=None, test=None):
    """A Source of a train split (and optionally validation and test splits), each (x, y) or a dataset; a train
    dataset over IN_MEMORY_BYTES streams, with the others."""
    if isinstance(train, tf.data.Dataset):
        try:
            train = dataset_arrays(f"{name} train", train, limit=IN_MEMORY_BYTES)
        except _TooLarge:
            return _stream(name, train, validation, test, options)
    x, y, *weight = train_parts = pair(f"{name} train", train)
    if test is None:
        try:
            keep, held_out = arrays.split_indices(len(y), options.test_fraction, options.seed)
        except DataError as error:
            raise DataError(f"{name}: {error}") from None
        splits = {split: (arrays.take_rows(x, rows), y[rows], *(w[rows] for w in weight))
                  for split, rows in (("train", keep), ("test", held_out))}
    else:
        splits = {"train": train_parts, "test": pair(f"{name} test", test)}
    if validation is not None:
        splits["validation"] = pair(f"{name} validation", validation)
    return arrays.from_split_arrays(name, splits)


def to_source(name, value, options):
    """A Source of what a `py:` function returned (see the module docstring)."""
    if isinstance(value, Source):
        return value
    if isinstance(value, dict):
        return npz.from_npz_content(name, {k: _float32(v) for k, v in value.items()}, options)
    return from_parts(name, value, options)


def load_python(location, options):
    """`py:pkg.module:function`: calls function(options) (or function()) and reads what it returns."""
    try:
        function = import_object(location, f"--data=py:{location}")
    except ValueError as error:
        raise DataError(str(error)) from None
    if not callable(function):
        raise DataError(f"--data=py:{location}: not a function")
    takes_options = bool(inspect.signature(function).parameters)
    return to_source(f"py:{location}", function(options) if takes_options else function(), options)


MEMORY = {}  # name -> function(options) returning a Source: the objects a running tfapp.fit call was given


def load_memory(location, options):
    """`memory:NAME`: data handed to `tfapp.fit` in this process (not a location that another process can read)."""
    if location not in MEMORY:
        raise DataError(f"--data=memory:{location}: only the tfapp.fit call that was given this data can read it")
    return MEMORY[location](options)
