"""Write any source once as TFRecord shards (+ spec.json) or as a TFDS dataset, e.g. to move it to a TPU VM.

    tfapp-data convert --data=images:/data/pets --out=gs://bucket/pets --format=tfrecord
    tfapp-data convert --data=csv:houses.csv --label_column=price --out=/data/tfds --format=tfds --name=houses

TFRecord: `<out>/<split>-NNNNN-of-MMMMM.tfrecord`, every feature a `tf.io.serialize_tensor` byte string, and
`<out>/spec.json` so `--data=tfrecord:<out>/*.tfrecord` needs no flags. TFDS: `<out>/<name>/1.0.0/`, readable
with `--data=tfds:<name> --data_dir=<out>` or `tfds.builder_from_directory`.
"""
import json
import os
import re

import numpy as np
import tensorflow as tf

from pipelines import tfrecord
from pipelines.source import DataError


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value.item() if isinstance(value, np.generic) else value


def _feature(spec):
    return {"dtype": spec.dtype.name, "shape": spec.shape.as_list(), "encoding": "tensor"}


def _flat(example):
    """{"x": tensor or {column: tensor}, "y"} -> {"x" or "x.<column>": …, "y": …} (tables: one feature a column)."""
    x = example["x"]
    columns = {f"{tfrecord.COLUMN_PREFIX}{name}": value for name, value in x.items()} if isinstance(x, dict) \
        else {"x": x}
    return {**columns, "y": example["y"]}


def write_tfrecord(source, out, shards=4, progress=None):
    """Writes every split of `source` to `out`; returns {split: number of examples}."""
    tf.io.gfile.makedirs(out)
    counts = {}
    for split, make in source.splits.items():
        features = {name: _feature(spec) for name, spec in _flat(make().element_spec).items()}
        writers = [tf.io.TFRecordWriter(os.path.join(out, f"{split}-{i:05d}-of-{shards:05d}.tfrecord"))
                   for i in range(shards)]
        count = 0
        for example in make():
            record = tf.train.Example(features=tf.train.Features(feature={
                name: tf.train.Feature(bytes_list=tf.train.BytesList(value=[
                    tf.io.serialize_tensor(tf.convert_to_tensor(value)).numpy()]))
                for name, value in _flat(example).items()}))
            writers[count % shards].write(record.SerializeToString())
            count += 1
            if progress:
                progress(split, count)
        for writer in writers:
            writer.close()
        counts[split] = count
    extra = {k: v for k, v in source.spec.items() if k not in ("features", "label")}
    with tf.io.gfile.GFile(os.path.join(out, tfrecord.SPEC_FILE), "w") as f:
        json.dump({"features": features, "num_examples": counts, "source_spec": _jsonable(extra)}, f, indent=2)
    return counts


def tfds_name(location):
    """A TFDS-valid dataset name from a location: 'images:/data/My Pets' -> 'my_pets'."""
    base = os.path.basename(location.rstrip("/")).split(".")[0]
    return re.sub(r"[^a-z0-9_]", "_", base.lower()).strip("_") or "dataset"


def write_tfds(source, out, name):
    """Stores `source` as TFDS dataset `name` version 1.0.0 under data_dir `out`; returns {split: count}."""
    import tensorflow_datasets as tfds
    element = source.splits["train"]().element_spec

    def feature(spec, names=None):
        if names is not None:
            return tfds.features.ClassLabel(names=[str(n) for n in names])
        dynamic = None in spec.shape.as_list()
        return tfds.features.Tensor(shape=tuple(spec.shape.as_list()), dtype=spec.dtype.as_numpy_dtype
                                    if spec.dtype != tf.string else np.str_,
                                    encoding=tfds.features.Encoding.ZLIB if dynamic else tfds.features.Encoding.NONE)

    names = source.spec.get("label_names")
    if names is None and "num_classes" in source.spec and element["y"].shape.rank == 0:
        names = [str(i) for i in range(source.spec["num_classes"])]
    features = tfds.features.FeaturesDict({"x": feature(element["x"]), "y": feature(element["y"], names)})
    try:
        tfds.dataset_builders.store_as_tfds_dataset(
            name=name, version="1.0.0", features=features, data_dir=out,
            split_datasets={split: make() for split, make in source.splits.items()},
            description=f"Converted by tfapp-data from {source.name}")
    except RuntimeError as error:
        raise DataError(f"--out={out}: {str(error).splitlines()[0]}") from None
    return dict(source.num_examples)
