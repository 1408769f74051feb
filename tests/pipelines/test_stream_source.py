"""A user's tf.data.Dataset that does not fit IN_MEMORY_BYTES streams (pipelines.stream_source): the same splits,
counts and statistics as when it is read into memory, without gathering it; bad datasets stop with one line."""
import numpy as np
import pytest
import tensorflow as tf
from sklearn.datasets import load_digits

from pipelines import LoadOptions, python_source, stream_source
from pipelines.source import DataError


@pytest.fixture
def streaming(monkeypatch):
    calls = []
    real = stream_source.from_datasets
    monkeypatch.setattr(stream_source, "from_datasets", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    monkeypatch.setattr(python_source, "IN_MEMORY_BYTES", 0)
    return calls


def _rows(source, split):
    return sorted(e["y"].tobytes() + e["x"].tobytes() for e in source.splits[split]().as_numpy_iterator())


def test_streamed_dataset_matches_the_in_memory_one(streaming):
    x, y = load_digits(return_X_y=True)
    dataset = tf.data.Dataset.from_tensor_slices((x.reshape(-1, 8, 8), y))  # float64 images, int labels
    python_source.IN_MEMORY_BYTES = 1 << 30  # (the fixture restores its own setting)
    in_memory = python_source.from_parts("d", dataset, LoadOptions())
    assert not streaming and in_memory.arrays is not None  # 1 GiB limit: read into memory
    python_source.IN_MEMORY_BYTES = 0
    streamed = python_source.from_parts("d", dataset, LoadOptions())
    assert streaming == ["d"] and streamed.arrays is None
    assert streamed.num_examples == in_memory.num_examples == {"train": 1438, "test": 359}
    assert _rows(streamed, "test") == _rows(in_memory, "test")  # the same held-out rows
    assert _rows(streamed, "train") == _rows(in_memory, "train")
    for key in ("features", "label", "num_classes", "x_max"):
        assert streamed.spec[key] == in_memory.spec[key], key
    assert streamed.spec["features"] == {"x": ((8, 8), "float32")}
    np.testing.assert_allclose(streamed.spec["signal_stats"], in_memory.spec["signal_stats"], rtol=1e-5)
    np.testing.assert_allclose(streamed.spec["label_stats"], in_memory.spec["label_stats"], rtol=1e-5)


def test_a_generator_of_columns_with_weights_and_given_splits_streams(streaming):
    rng = np.random.default_rng(0)

    def rows(n):
        def generate():
            for _ in range(n):
                a = rng.random(2)
                yield {"a": a, "b": rng.random()}, a.sum(), 2.0
        signature = ({"a": tf.TensorSpec((2,), tf.float64), "b": tf.TensorSpec((), tf.float64)},
                     tf.TensorSpec((), tf.float64), tf.TensorSpec((), tf.float32))
        return tf.data.Dataset.from_generator(generate, output_signature=signature)  # unknown cardinality

    x_val = {"a": rng.random((30, 2)), "b": rng.random(30)}
    source = python_source.from_parts("g", rows(200), LoadOptions(), validation=(x_val, x_val["a"].sum(1), np.ones(30)),
                                      test=rows(40))
    assert source.num_examples == {"train": 200, "validation": 30, "test": 40}
    assert source.spec["features"] == {"a": ((2,), "float32"), "b": ((), "float32")}
    assert "num_classes" not in source.spec and source.spec["label"] == ((), "float32")
    mean, var = source.spec["feature_stats"]["a"]
    assert 0.4 < mean < 0.6 and 0.06 < var < 0.11  # uniform(0, 1): 1/2, 1/12
    example = next(source.splits["train"]().as_numpy_iterator())
    assert example["sample_weight"] == 2.0 and example["x"]["a"].dtype == np.float32


@pytest.mark.parametrize("dataset, message", [
    (tf.data.Dataset.range(5).map(lambda i: (i, i)).repeat(), "repeats forever"),
    (tf.data.Dataset.range(5).map(lambda i: (tf.range(i), i)), "varying shape"),
    (tf.data.Dataset.range(5).map(lambda i: (i, i)).filter(lambda x, y: x > 10), "is empty"),
    (tf.data.Dataset.range(5), "expected a dataset of unbatched"),
])
def test_bad_streamed_datasets_stop_with_one_line(streaming, dataset, message):
    with pytest.raises(DataError, match=message) as error:
        python_source.from_parts("bad", dataset, LoadOptions(), test=(np.zeros((2,)), np.zeros(2)))
    assert "\n" not in str(error.value)
