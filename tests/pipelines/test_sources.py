"""Sources: embedded digits, npz in both layouts (local and ram://), and clear errors naming the file."""
import io

import numpy as np
import pytest
import tensorflow as tf

import pipelines


def _write_npz(path, **arrays):
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(buffer.getvalue())


def test_embedded_digits_split_is_seeded_80_20():
    source = pipelines.load("embedded:digits", test_fraction=0.2, seed=0)
    assert source.num_examples == {"train": 1438, "test": 359}
    assert source.spec["num_classes"] == 10
    assert source.spec["features"]["x"] == ((8, 8), "uint8")
    first = next(iter(source.splits["test"]()))
    again = next(iter(pipelines.load("embedded:digits", seed=0).splits["test"]()))
    other = next(iter(pipelines.load("embedded:digits", seed=1).splits["test"]()))
    np.testing.assert_array_equal(first["x"], again["x"])
    assert not np.array_equal(first["x"], other["x"]) or first["y"] != other["y"]


@pytest.mark.parametrize("root", ["local", "ram"])
def test_npz_with_explicit_splits(tmp_path, root):
    path = str(tmp_path / "d.npz") if root == "local" else "ram://tfapp-tests/d.npz"
    x = np.arange(40, dtype=np.float32).reshape(10, 4)
    _write_npz(path, x_train=x[:8], y_train=np.arange(8) % 3, x_test=x[8:], y_test=np.array([0, 2]))
    source = pipelines.load(f"npz:{path}")
    assert source.num_examples == {"train": 8, "test": 2}
    assert source.spec["num_classes"] == 3
    rows = list(source.splits["test"]().as_numpy_iterator())
    np.testing.assert_array_equal(rows[1]["x"], x[9])


def test_npz_with_x_y_is_split_by_fraction(tmp_path):
    path = str(tmp_path / "xy.npz")
    _write_npz(path, x=np.zeros((20, 3)), y=np.arange(20) % 2)
    assert pipelines.load(f"npz:{path}", test_fraction=0.25).num_examples == {"train": 15, "test": 5}


@pytest.mark.parametrize("arrays, message", [
    ({"a": np.zeros(3)}, r"expected arrays x_train, y_train, x_test, y_test \(or x, y\); found \['a'\]"),
    ({"x": np.zeros((5, 2)), "y": np.zeros(4)}, "5 inputs but 4 labels"),
])
def test_npz_errors_name_the_file(tmp_path, arrays, message):
    path = str(tmp_path / "bad.npz")
    _write_npz(path, **arrays)
    with pytest.raises(pipelines.DataError, match=message) as error:
        pipelines.load(f"npz:{path}")
    assert "bad.npz" in str(error.value)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(pipelines.DataError, match="nope.npz: no such file"):
        pipelines.load(f"npz:{tmp_path}/nope.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(pipelines.DataError, match="junk.npz: not a readable .npz file"):
        pipelines.load(f"npz:{tmp_path}/junk.npz")


@pytest.mark.parametrize("data, message", [
    ("digits", "expected KIND:LOCATION"),
    ("csvx:/a", "unknown kind 'csvx'; valid: embedded, npz, csv, images"),
    ("embedded:iris", "unknown embedded dataset; valid: breast_cancer, co2, diabetes, digits, ner_sample"),
])
def test_bad_data_flag(data, message):
    with pytest.raises(pipelines.DataError, match=message):
        pipelines.load(data)
