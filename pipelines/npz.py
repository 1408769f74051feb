"""`npz:PATH` — arrays `x_train, y_train, x_test, y_test` (and `x_val, y_val`: its own validation split), or `x, y`
split by `test_fraction` with the seed.

    tfapp-train --data=npz:gs://my-bucket/signals.npz
"""
import io

import numpy as np
import tensorflow as tf

from pipelines import arrays
from pipelines.source import DataError


def read_npz(path):
    """{name: array} of an .npz file read through tf.io.gfile (no pickles)."""
    if not tf.io.gfile.exists(path):
        raise DataError(f"{path}: no such file")
    with tf.io.gfile.GFile(path, "rb") as f:
        raw = f.read()
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as content:
            return {key: content[key] for key in content.files}
    except (ValueError, OSError) as error:
        raise DataError(f"{path}: not a readable .npz file ({error})") from None


def from_npz_content(name, content, options):
    keys = set(content)
    if {"x_train", "y_train", "x_test", "y_test"} <= keys:
        own_validation = {"validation": (content["x_val"], content["y_val"])} if {"x_val", "y_val"} <= keys else {}
        return arrays.from_split_arrays(name, {
            "train": (content["x_train"], content["y_train"]),
            **own_validation,
            "test": (content["x_test"], content["y_test"]),
        })
    if {"x", "y"} <= keys:
        return arrays.from_arrays(name, content["x"], content["y"], test_fraction=options.test_fraction,
                                  seed=options.seed)
    raise DataError(f"{name}: expected arrays x_train, y_train, x_test, y_test (or x, y); found {sorted(keys)}")


def load_npz(location, options):
    return from_npz_content(location, read_npz(location), options)
