"""`py:pkg.module:function` — data from the user's own Python, and the objects `tfapp.fit` is given, as a `Source`.

    tfapp-train --task=classification --data=py:my_project.data:load    # load(options) or load() returns the data

The function (or `tfapp.fit`'s `train=`, `validation=`, `test=`) gives any of: a `pipelines.Source`; numpy arrays
`(x, y)` (`x` may be a dict of columns); a dict of arrays as in an .npz file (`x, y`, or `x_train, y_train, x_test,
y_test` and optionally `x_val, y_val`); a finite `tf.data.Dataset` of unbatched `(x, y)` examples (read into memory
once). `(x, y, sample_weight)` (arrays, or a dataset of such examples) weighs each example in the loss and the
metrics, as Keras `fit` does. Float64 arrays become float32 (as Keras `fit` does). Without a test split,
`test_fraction` of the train rows is held out (seeded), as for every other source.
"""
import importlib
import inspect

import numpy as np
import tensorflow as tf

from pipelines import arrays, npz
from pipelines.source import DataError, Source


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


def dataset_arrays(name, dataset):
    """(x, y) or (x, y, sample_weight) numpy arrays of a finite dataset of unbatched examples of that form."""
    if dataset.cardinality() == tf.data.INFINITE_CARDINALITY:
        raise DataError(f"{name}: the dataset repeats forever; give one pass of the examples (tfapp repeats it)")
    spec = dataset.element_spec
    if not isinstance(spec, tuple) or len(spec) not in (2, 3):
        raise DataError(f"{name}: expected a dataset of unbatched (x, y) or (x, y, sample_weight) examples, got "
                        f"elements {spec}")
    rows = list(dataset.as_numpy_iterator())
    if not rows:
        raise DataError(f"{name}: the dataset is empty")
    x = tf.nest.map_structure(lambda *leaves: np.stack(leaves), *[row[0] for row in rows])
    return (x, *(np.stack([row[i] for row in rows]) for i in range(1, len(spec))))


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
    """A Source of a train split (and optionally validation and test splits), each (x, y) or a dataset."""
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
