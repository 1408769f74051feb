"""pipelines/validation.py: the validation split carved from train (stratified, ordered, by position for files), the
same rows every time, never a test row; a source's own validation split kept."""
import io

import numpy as np
import pytest

import pipelines
from pipelines import arrays


def _rows(source, split):
    return [bytes(np.asarray(e["x"]).tobytes()) for e in source.splits[split]().as_numpy_iterator()]


def test_digits_validation_is_stratified_disjoint_and_the_same_every_time():
    source = pipelines.load("embedded:digits")
    carved = pipelines.with_validation(source, 0.1, seed=0)
    assert carved.num_examples == {"train": 1295, "validation": 143, "test": 359}
    train, validation = carved.arrays["train"]["y"], carved.arrays["validation"]["y"]
    assert len(train) + len(validation) == 1438
    # stratified: every class gives ~10% of its train rows
    counts, totals = np.bincount(validation, minlength=10), np.bincount(source.arrays["train"]["y"], minlength=10)
    assert np.all(np.abs(counts - np.round(totals * 0.1)) <= 0)
    assert not set(_rows(carved, "train")) & set(_rows(carved, "validation"))
    assert set(_rows(carved, "test")) == set(_rows(source, "test"))  # the test split is untouched
    again = pipelines.with_validation(pipelines.load("embedded:digits"), 0.1, seed=0)
    assert _rows(again, "validation") == _rows(carved, "validation")
    other = pipelines.with_validation(pipelines.load("embedded:digits"), 0.1, seed=1)
    assert _rows(other, "validation") != _rows(carved, "validation")


def test_a_time_series_validates_on_its_last_windows():
    source = pipelines.load("embedded:co2", window=24, horizon=1)
    carved = pipelines.with_validation(source, 0.1, seed=0)
    train, validation = carved.arrays["train"]["y"], carved.arrays["validation"]["y"]
    everything = np.asarray(source.arrays["train"]["y"])
    np.testing.assert_array_equal(np.concatenate([train, validation]), everything)  # in order, the last 10% held out


def test_a_source_with_its_own_validation_split_keeps_it(tmp_path):
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    np.savez(buffer, x_train=rng.random((40, 3)), y_train=np.arange(40) % 2, x_val=rng.random((7, 3)),
             y_val=np.arange(7) % 2, x_test=rng.random((9, 3)), y_test=np.arange(9) % 2)
    (tmp_path / "data.npz").write_bytes(buffer.getvalue())
    source = pipelines.load(f"npz:{tmp_path / 'data.npz'}")
    assert pipelines.with_validation(source, 0.1, seed=0).num_examples == {"train": 40, "validation": 7, "test": 9}


def test_rows_read_from_files_are_carved_by_position():
    """A source without arrays (files, TFRecord, TFDS): the same rows by position in the split's fixed order."""
    x, y = np.arange(100, dtype=np.float32)[:, None], np.arange(100) % 3
    source = arrays.from_split_arrays("toy", {"train": (x, y), "test": (x[:10], y[:10])})
    streaming = pipelines.Source(source.name, source.splits, source.num_examples, source.spec)  # no arrays
    carved = pipelines.with_validation(streaming, 0.2, seed=0)
    assert carved.num_examples["validation"] == 20 and carved.num_examples["train"] == 80
    train = {float(e["x"][0]) for e in carved.splits["train"]().as_numpy_iterator()}
    validation = {float(e["x"][0]) for e in carved.splits["validation"]().as_numpy_iterator()}
    assert len(validation) == 20 and len(train) == 80 and not train & validation
    assert validation == {float(e["x"][0]) for e in carved.splits["validation"]().as_numpy_iterator()}


def test_a_bad_fraction_names_the_flag():
    with pytest.raises(pipelines.DataError, match="--validation_fraction=1.5"):
        pipelines.with_validation(pipelines.load("embedded:digits"), 1.5, seed=0)
