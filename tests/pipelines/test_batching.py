"""Train/eval transforms: static per-replica batches, seeded order, eval padding that counts each example once,
and disjoint shards per input pipeline (host)."""
import numpy as np
import pytest
import tensorflow as tf

import pipelines
from pipelines import arrays


def _source(n=50):
    x = np.arange(n, dtype=np.float32)[:, None]
    return arrays.from_split_arrays("toy", {"train": (x, np.arange(n)), "test": (x, np.arange(n))})


def _pre(example):
    return example["x"] * 2.0, example["y"]


def _context(pipeline_id, num_pipelines, replicas):
    return tf.distribute.InputContext(num_input_pipelines=num_pipelines, input_pipeline_id=pipeline_id,
                                      num_replicas_in_sync=replicas)


def test_train_batches_are_static_per_replica_and_seeded():
    source = _source()
    ds = pipelines.train_dataset(source.splits["train"], _pre, 8, seed=3, input_context=_context(0, 1, 2))
    assert ds.element_spec[0].shape.as_list() == [4, 1]  # global 8 over 2 replicas
    first = [y.numpy().tolist() for _, y in ds.take(5)]
    again = [y.numpy().tolist() for _, y in pipelines.train_dataset(
        source.splits["train"], _pre, 8, seed=3, input_context=_context(0, 1, 2)).take(5)]
    assert first == again
    assert sorted(sum(first, [])) != sum(first, [])  # shuffled


def test_global_batch_must_divide_over_replicas():
    with pytest.raises(ValueError, match="--batch_size=10 .global. is not divisible by 4 replicas"):
        pipelines.train_dataset(_source().splits["train"], _pre, 10, seed=0, input_context=_context(0, 1, 4))


@pytest.mark.parametrize("vectorized", [False, True])
@pytest.mark.parametrize("num_pipelines, replicas, batch", [(1, 1, 16), (1, 2, 16), (2, 2, 8), (2, 4, 12)])
def test_eval_padding_counts_every_example_once_and_hosts_are_disjoint(num_pipelines, replicas, batch, vectorized):
    n = 50
    source = _source(n)
    seen, steps = [], set()
    for pipeline_id in range(num_pipelines):
        context = _context(pipeline_id, num_pipelines, replicas)
        ds = pipelines.eval_dataset(source.splits["test"], _pre, batch, n, input_context=context,
                                    vectorized=vectorized)
        batches = list(ds.as_numpy_iterator())
        steps.add(len(batches))
        assert len(batches) % (replicas // num_pipelines) == 0  # whole global steps per host
        for features, labels, weights in batches:
            assert features.shape == (batch // replicas, 1)
            seen.extend(labels[weights > 0].tolist())
            assert np.all(features[weights == 0] == 0)
    assert len(steps) == 1  # every host runs the same number of eval steps (no multi-worker hang)
    assert sorted(seen) == list(range(n))


def test_training_pipelines_run_without_the_autotuning_thread():
    """Deleting a training iterator whose tf.data autotuning ran a while (at the end of the loops, or autotune's
    own iterator) held runs for up to ~40 s: every training pipeline turns it off, and still yields its batches."""
    source = _source(64)
    arrays = {"x": np.arange(64, dtype=np.float32), "y": np.arange(64, dtype=np.int64)}
    datasets = [pipelines.train_dataset(source.splits["train"], _pre, 16, seed=0),
                pipelines.train_dataset(None, lambda e: (e["x"], e["y"]), 16, seed=0, arrays=arrays, vectorized=True),
                pipelines.index_blocks(arrays, 16, seed=0, block=2)]
    for ds in datasets:
        assert ds.options().autotune.enabled is False
        assert len(list(ds.take(3).as_numpy_iterator())) == 3


@pytest.mark.parametrize("repeat", [False, True])
def test_eval_pipelines_run_without_the_autotuning_thread_and_still_read_everything(repeat):
    """Deleting an eval iterator whose tf.data autotuning ran a while blocked a run for seconds: eval pipelines
    (cached after one pass) turn it off; a repeating one still yields its passes in order."""
    n = 50
    ds = pipelines.eval_dataset(_source(n).splits["test"], _pre, 16, n, repeat=repeat)
    assert ds.options().autotune.enabled is False
    steps = pipelines.eval_steps(n, 16)
    labels = [y[w > 0].tolist() for _, y, w in ds.take(2 * steps).as_numpy_iterator()]
    assert sum(labels[:steps], []) == list(range(n))
    if repeat:
        assert labels[steps:] == labels[:steps]


def test_vectorized_train_batches_equal_per_example_ones():
    source = _source()
    plain = pipelines.train_dataset(source.splits["train"], _pre, 8, seed=5)
    fast = pipelines.train_dataset(source.splits["train"], _pre, 8, seed=5, vectorized=True)
    for (x1, y1), (x2, y2) in zip(plain.take(7), fast.take(7)):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)


def test_hosts_read_disjoint_training_shards():
    source = _source(40)
    seen = []
    for pipeline_id in range(2):
        ds = pipelines.train_dataset(source.splits["train"], _pre, 4, seed=0, input_context=_context(pipeline_id, 2, 2))
        seen.append({int(y) for _, labels in ds.take(10) for y in labels.numpy()})
    assert not seen[0] & seen[1] and len(seen[0] | seen[1]) == 40


def test_file_cache(tmp_path):
    source = _source()
    prefix = str(tmp_path / "cache")
    ds = pipelines.train_dataset(source.splits["train"], _pre, 8, seed=0, cache=prefix)
    list(ds.take(10))
    assert any(name.startswith("cache-0") for name in tf.io.gfile.listdir(str(tmp_path)))


def test_preprocess_runs_eagerly_and_in_map():
    source = _source(4)
    eager = _pre(next(iter(source.splits["train"]())))
    mapped = next(iter(source.splits["train"]().map(_pre)))
    np.testing.assert_array_equal(eager[0], mapped[0])


def test_gathered_batches_cover_each_epoch_and_shard_by_host():
    n = 48
    source = _source(n)
    arrays = source.arrays["train"]
    ds = pipelines.train_dataset(source.splits["train"], _pre, 8, seed=1, vectorized=True, arrays=arrays)
    epoch = [int(y) for _, labels in ds.take(n // 8) for y in labels.numpy()]
    assert sorted(epoch) == list(range(n)) and epoch != list(range(n))
    features, labels = next(iter(ds))
    np.testing.assert_array_equal(features[:, 0], labels.numpy() * 2.0)  # x = y here, preprocess doubles x
    hosts = [{int(y) for _, labels in pipelines.train_dataset(
        source.splits["train"], _pre, 8, seed=1, input_context=_context(i, 2, 2), vectorized=True,
        arrays=arrays).take(6) for y in labels.numpy()} for i in range(2)]
    assert not hosts[0] & hosts[1] and len(hosts[0] | hosts[1]) == n


@pytest.mark.parametrize("vectorized, use_arrays", [(False, False), (True, False), (True, True)])
def test_skip_steps_resumes_the_same_order(vectorized, use_arrays):
    source = _source(30)
    arrays = source.arrays["train"] if use_arrays else None
    context = _context(0, 1, 2)

    def labels(skip, count):
        ds = pipelines.train_dataset(source.splits["train"], _pre, 8, seed=2, input_context=context,
                                     vectorized=vectorized, arrays=arrays, skip_steps=skip)
        return [y.numpy().tolist() for _, y in ds.take(count)]

    full = labels(0, 14)
    assert labels(3, 8) == full[6:14]  # 3 global steps = 6 per-replica batches on 2 replicas


def test_packed_columns_gather_back_into_the_same_rows():
    from pipelines import batching
    arrays = {"x": {"a": np.arange(5, dtype=np.float32), "city": np.array(list("vwxyz")),
                    "b": np.arange(5, 10, dtype=np.float32)}, "y": np.arange(5)}
    packed, unpack = batching.pack_columns(arrays)
    assert sorted(packed["x"]) == sorted({np.dtype(np.float32).str, arrays["x"]["city"].dtype.str})
    index = tf.constant([4, 1])
    batch = unpack(tf.nest.map_structure(lambda a: tf.gather(a, index), packed))
    assert list(batch["x"]) == ["a", "city", "b"]
    assert batch["x"]["b"].numpy().tolist() == [9.0, 6.0] and batch["x"]["city"].numpy().tolist() == [b"z", b"w"]
    assert batch["y"].numpy().tolist() == [4, 1]


@pytest.mark.parametrize("skip", [0, 5])
def test_index_blocks_over_preprocessed_rows_equal_the_gathered_batches(skip):
    """The JAX engine's device-resident rows: gathering index blocks from `preprocess_rows` gives the batches
    train_dataset(arrays=…) gives, in the same order, also when resuming (skip_steps)."""
    source = _source(40)
    arrays = source.arrays["train"]
    gathered = pipelines.train_dataset(source.splits["train"], _pre, 8, seed=3, vectorized=True, arrays=arrays,
                                       skip_steps=skip)
    expected = [(x.numpy(), y.numpy()) for x, y in gathered.take(12)]
    features, labels = pipelines.preprocess_rows(arrays, _pre)
    blocks = pipelines.index_blocks(arrays, 8, seed=3, skip_steps=skip, block=4)
    assert blocks.element_spec.shape == (4, 8) and blocks.element_spec.dtype == tf.int32
    got = [(features[rows], labels[rows]) for block in blocks.take(3) for rows in block.numpy()]
    for (x, y), (want_x, want_y) in zip(got, expected, strict=True):
        np.testing.assert_array_equal(x, want_x)
        np.testing.assert_array_equal(y, want_y)
