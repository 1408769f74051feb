"""`tfrecord:GLOB` — TFRecord shards (the format Cloud TPUs stream from GCS), with a feature spec.

    tfapp-train --data='tfrecord:gs://bucket/digits/*.tfrecord'   # spec.json beside the shards
    tfapp-train --data='tfrecord:/data/*.tfrecord' --feature_spec='{"x": {"dtype": "float32", "shape": [8, 8]}, "y": {"dtype": "int64", "shape": []}}'

The spec maps each feature to {"dtype", "shape", "encoding"} (a table: one feature "x.<column>" per column, read
back as the dict "x"): encoding "example" (default) is a plain
tf.train.Example feature (int64/float32/string, fixed shape); "tensor" is a `tf.io.serialize_tensor` byte string
(any dtype, `null` dims for variable length), which `tfapp-data convert --format=tfrecord` writes together with
`spec.json`. Shards named `train-*` / `test-*` are those splits; otherwise the examples are split by
`test_fraction` with the seed. Every shard is read once at load: a corrupt one is named with its record number.
"""
import json
import os

import numpy as np
import tensorflow as tf

from pipelines.source import DataError, Source

SPEC_FILE = "spec.json"
COLUMN_PREFIX = "x."  # a table's columns are features "x.<column>"; they come back as the dict "x"


def _feature_spec(files, options):
    text = options.feature_spec
    where = "--feature_spec"
    if not text:
        path = os.path.join(os.path.dirname(files[0]), SPEC_FILE)
        if not tf.io.gfile.exists(path):
            raise DataError(f"{files[0]}: no {SPEC_FILE} beside the shards; pass --feature_spec='{{\"x\": "
                            f"{{\"dtype\": \"float32\", \"shape\": [8, 8]}}, \"y\": {{\"dtype\": \"int64\", \"shape\": []}}}}'")
        with tf.io.gfile.GFile(path) as f:
            text, where = f.read(), path
    try:
        content = json.loads(text)
    except ValueError as error:
        raise DataError(f"{where}: not valid JSON ({error})") from None
    features = content.get("features", content)
    has_x = "x" in features or any(name.startswith(COLUMN_PREFIX) for name in features)
    if not has_x or "y" not in features:
        raise DataError(f"{where}: the spec must describe features 'x' (or table columns 'x.<column>') and 'y'; "
                        f"found {sorted(features)}")
    return features, content.get("source_spec", {})


def parser(spec):
    """tf.data map: serialized tf.train.Example -> {"x", "y"} according to `spec`."""
    wire = {}
    for name, feature in spec.items():
        if feature.get("encoding", "example") == "tensor":
            wire[name] = tf.io.FixedLenFeature([], tf.string)
        else:
            wire[name] = tf.io.FixedLenFeature(feature["shape"], tf.as_dtype(feature["dtype"]))

    def parse(record):
        parsed = tf.io.parse_single_example(record, wire)
        out = {}
        for name, feature in spec.items():
            value = parsed[name]
            if feature.get("encoding", "example") == "tensor":
                value = tf.io.parse_tensor(value, tf.as_dtype(feature["dtype"]))
                value.set_shape(feature["shape"])
            out[name] = value
        if "x" in out:
            return {"x": out["x"], "y": out["y"]}
        return {"x": {name[len(COLUMN_PREFIX):]: value for name, value in out.items() if name != "y"}, "y": out["y"]}
    return parse


def _count(path, parse):
    count = 0
    try:
        for record in tf.data.TFRecordDataset(path):
            if count == 0:
                parse(record)
            count += 1
    except tf.errors.DataLossError as error:
        raise DataError(f"{path}: corrupt TFRecord at record {count} ({error.message.splitlines()[0]})") from None
    except (tf.errors.InvalidArgumentError, ValueError) as error:
        raise DataError(f"{path}: record 0 does not match the feature spec ({str(error).splitlines()[0]})") from None
    return count


def load_tfrecord(location, options):
    files = sorted(tf.io.gfile.glob(location))
    if not files:
        raise DataError(f"--data=tfrecord:{location}: no file matches")
    spec, extra = _feature_spec(files, options)
    parse = parser(spec)
    counts = {path: _count(path, parse) for path in files}
    by_split = {split: [p for p in files if os.path.basename(p).startswith(split + "-")] for split in ("train", "test")}
    columns = {"x": spec["x"]} if "x" in spec else \
        {name[len(COLUMN_PREFIX):]: feature for name, feature in spec.items() if name != "y"}
    source_spec = {"features": {name: (tuple(f["shape"]), f["dtype"]) for name, f in columns.items()},
                   "label": (tuple(spec["y"]["shape"]), spec["y"]["dtype"]), **extra}
    if by_split["train"] and by_split["test"]:
        return Source(f"tfrecord:{location}",
                      {s: (lambda fs=fs: tf.data.TFRecordDataset(fs).map(parse)) for s, fs in by_split.items()},
                      {s: sum(counts[p] for p in fs) for s, fs in by_split.items()}, source_spec)
    total = sum(counts.values())
    is_test = np.zeros(total, bool)
    is_test[np.random.default_rng(options.seed).permutation(total)[:int(round(total * options.test_fraction))]] = True
    mask = tf.constant(is_test)

    def make(want_test):
        return lambda: tf.data.TFRecordDataset(files).enumerate().filter(
            lambda i, _: tf.equal(tf.gather(mask, i), want_test)).map(lambda _, record: parse(record))

    return Source(f"tfrecord:{location}", {"train": make(False), "test": make(True)},
                  {"train": int((~is_test).sum()), "test": int(is_test.sum())}, source_spec)
