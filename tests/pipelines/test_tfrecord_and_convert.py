"""TFRecord shards (written by convert, and plain tf.train.Example ones with --feature_spec), TFDS round trip,
offline TFDS behaviour, and corrupt or mismatching records named by file and record."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

import pipelines
from pipelines import convert


def _rows(source, split):
    return list(source.splits[split]().as_numpy_iterator())


def test_convert_to_tfrecord_and_read_back_equal(tmp_path):
    source = pipelines.load("embedded:digits")
    out = str(tmp_path / "shards")
    counts = convert.write_tfrecord(source, out, shards=3)
    assert counts == {"train": 1438, "test": 359}
    assert len(tf.io.gfile.glob(f"{out}/train-*.tfrecord")) == 3
    back = pipelines.load(f"tfrecord:{out}/*.tfrecord")
    assert back.num_examples == source.num_examples and back.spec["num_classes"] == 10
    original = sorted((r["x"].tobytes(), int(r["y"])) for r in _rows(source, "test"))
    restored = sorted((r["x"].tobytes(), int(r["y"])) for r in _rows(back, "test"))
    assert original == restored


def test_conll_converts_with_variable_length(tmp_path):
    path = tmp_path / "s.conll"
    path.write_text("a X B-PER\nb X O\n\nc X O\n\nd X B-LOC\ne X O\nf X O\n\ng X O\n")
    source = pipelines.load(f"conll:{path}", test_fraction=0.25)
    convert.write_tfrecord(source, str(tmp_path / "out"), shards=1)
    back = pipelines.load(f"tfrecord:{tmp_path}/out/*.tfrecord")
    lengths = sorted(len(r["x"]) for s in ("train", "test") for r in _rows(back, s))
    assert lengths == [1, 1, 2, 3]


def _write_examples(path, n, corrupt_at=None):
    with tf.io.TFRecordWriter(path) as writer:
        for i in range(n):
            example = tf.train.Example(features=tf.train.Features(feature={
                "x": tf.train.Feature(float_list=tf.train.FloatList(value=[i, i + 0.5])),
                "y": tf.train.Feature(int64_list=tf.train.Int64List(value=[i % 2]))}))
            writer.write(example.SerializeToString())
    if corrupt_at is not None:
        data = bytearray(open(path, "rb").read())
        data[corrupt_at] ^= 0xFF
        open(path, "wb").write(bytes(data))


SPEC = json.dumps({"x": {"dtype": "float32", "shape": [2]}, "y": {"dtype": "int64", "shape": []}})


def test_plain_examples_with_feature_spec_split_by_fraction(tmp_path):
    _write_examples(str(tmp_path / "a.tfrecord"), 10)
    source = pipelines.load(f"tfrecord:{tmp_path}/*.tfrecord", feature_spec=SPEC, test_fraction=0.3)
    assert source.num_examples == {"train": 7, "test": 3}
    xs = sorted(float(r["x"][0]) for s in ("train", "test") for r in _rows(source, s))
    assert xs == list(range(10))


def test_corrupt_record_is_named(tmp_path):
    _write_examples(str(tmp_path / "bad.tfrecord"), 10, corrupt_at=200)
    with pytest.raises(pipelines.DataError, match=r"bad.tfrecord: corrupt TFRecord at record \d"):
        pipelines.load(f"tfrecord:{tmp_path}/*.tfrecord", feature_spec=SPEC)


def test_spec_errors(tmp_path):
    _write_examples(str(tmp_path / "a.tfrecord"), 3)
    with pytest.raises(pipelines.DataError, match="no spec.json beside the shards; pass --feature_spec"):
        pipelines.load(f"tfrecord:{tmp_path}/*.tfrecord")
    with pytest.raises(pipelines.DataError, match="record 0 does not match the feature spec"):
        pipelines.load(f"tfrecord:{tmp_path}/*.tfrecord",
                       feature_spec=json.dumps({"x": {"dtype": "float32", "shape": [5]},
                                                "y": {"dtype": "int64", "shape": []}}))
    with pytest.raises(pipelines.DataError, match="no file matches"):
        pipelines.load(f"tfrecord:{tmp_path}/*.nothing")


def test_tfds_round_trip_through_convert(tmp_path):
    source = pipelines.load("embedded:digits")
    convert.write_tfds(source, str(tmp_path), "digits_copy")
    back = pipelines.load("tfds:digits_copy", data_dir=str(tmp_path))
    assert back.num_examples == source.num_examples and back.spec["num_classes"] == 10
    assert back.spec["features"]["x"] == ((8, 8), "uint8")
    assert os.path.isdir(tmp_path / "digits_copy" / "1.0.0")


def test_tfds_missing_dataset_fails_fast_without_download(tmp_path):
    with pytest.raises(pipelines.DataError, match="not prepared in --data_dir=.* --download is off.*tfds build mnist"):
        pipelines.load("tfds:mnist", data_dir=str(tmp_path))


def _store_images(tmp_path, name, x_key, y_key):
    import tensorflow_datasets as tfds
    rng = np.random.default_rng(0)
    sizes = [(20, 30), (40, 24), (33, 33), (25, 50)]
    rows = [{x_key: rng.integers(0, 255, (h, w, 3), np.uint8), y_key: i % 2} for i, (h, w) in enumerate(sizes)]
    features = tfds.features.FeaturesDict({x_key: tfds.features.Image(shape=(None, None, 3)),
                                           y_key: tfds.features.ClassLabel(names=["cat", "dog"])})
    signature = {x_key: tf.TensorSpec([None, None, 3], tf.uint8), y_key: tf.TensorSpec([], tf.int64)}

    def dataset(part):
        return tf.data.Dataset.from_generator(lambda: iter(part), output_signature=signature)

    tfds.dataset_builders.store_as_tfds_dataset(name=name, version="1.0.0", features=features,
                                                data_dir=str(tmp_path),
                                                split_datasets={"train": dataset(rows[:3]), "test": dataset(rows[3:])})


def test_tfds_images_of_varying_size_are_resized(tmp_path):
    """Like tfds:cats_vs_dogs: an Image feature of unknown height and width, prepared offline in data_dir."""
    _store_images(tmp_path, "pets_mini", "x", "y")
    source = pipelines.load("tfds:pets_mini", data_dir=str(tmp_path), image_size=16)
    assert source.spec["features"]["x"] == ((16, 16, 3), "float32") and source.spec["label_names"] == ["cat", "dog"]
    shapes = {tuple(r["x"].shape) for s in ("train", "test") for r in _rows(source, s)}
    assert shapes == {(16, 16, 3)}


def test_tfds_without_supervised_keys_is_a_clear_error(tmp_path):
    _store_images(tmp_path, "pets_raw", "image", "label")
    with pytest.raises(pipelines.DataError,
                       match="no supervised .input, label. keys; name the label with --label_column; features: image, label"):
        pipelines.load("tfds:pets_raw", data_dir=str(tmp_path))
