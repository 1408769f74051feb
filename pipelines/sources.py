"""`load("KIND:LOCATION")` -> Source. The registry of data sources, a plain dict.

    python -c "import pipelines; print(pipelines.load('npz:/tmp/my.npz', test_fraction=0.2).num_examples)"

Kinds: `embedded:NAME` (datasets shipped in pipelines/data, offline), `npz:PATH` (arrays `x_train, y_train,
x_test, y_test`, or `x, y` split by `test_fraction` with the seed). Every path goes through tf.io.gfile, so
`gs://` and `ram://` locations work like local files.
"""
import io

import numpy as np
import tensorflow as tf

from pipelines import arrays
from pipelines.source import DataError

EMBEDDED = {"digits": "digits.npz"}  # name -> file in pipelines/data (see its README for source and licence)


def _read_npz(path):
    if not tf.io.gfile.exists(path):
        raise DataError(f"{path}: no such file")
    with tf.io.gfile.GFile(path, "rb") as f:
        raw = f.read()
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except (ValueError, OSError) as error:
        raise DataError(f"{path}: not a readable .npz file ({error})") from None


def _from_npz_arrays(name, content, test_fraction, seed):
    keys = set(content)
    if {"x_train", "y_train", "x_test", "y_test"} <= keys:
        return arrays.from_split_arrays(name, {
            "train": (content["x_train"], content["y_train"]),
            "test": (content["x_test"], content["y_test"]),
        })
    if {"x", "y"} <= keys:
        return arrays.from_arrays(name, content["x"], content["y"], test_fraction=test_fraction, seed=seed)
    raise DataError(f"{name}: expected arrays x_train, y_train, x_test, y_test (or x, y); found {sorted(keys)}")


def load_npz(location, test_fraction=0.2, seed=0, data_dir=None):
    del data_dir  # a path names its own file
    return _from_npz_arrays(location, _read_npz(location), test_fraction, seed)


def load_embedded(location, test_fraction=0.2, seed=0, data_dir=None):
    del data_dir
    if location not in EMBEDDED:
        raise DataError(f"--data=embedded:{location}: unknown embedded dataset; valid: {', '.join(sorted(EMBEDDED))}")
    import importlib.resources
    path = importlib.resources.files("pipelines") / "data" / EMBEDDED[location]
    return _from_npz_arrays(f"embedded:{location}", _read_npz(str(path)), test_fraction, seed)


SOURCES = {"embedded": load_embedded, "npz": load_npz}


def load(data, test_fraction=0.2, seed=0, data_dir=None):
    """`data` is "KIND:LOCATION" (e.g. "embedded:digits", "npz:gs://bucket/x.npz"); returns a pipelines.Source."""
    kind, sep, location = data.partition(":")
    if not sep or not location:
        raise DataError(f"--data={data!r}: expected KIND:LOCATION with KIND one of {', '.join(SOURCES)}")
    if kind not in SOURCES:
        raise DataError(f"--data={data!r}: unknown kind {kind!r}; valid: {', '.join(SOURCES)}")
    return SOURCES[kind](location, test_fraction=test_fraction, seed=seed, data_dir=data_dir)
