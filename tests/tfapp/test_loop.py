"""The multi-step loop: N steps per call give the same weights as one step per call (Default and Mirrored),
uneven loop schedules, and an XLA-compilable step for every task (what TPUStrategy needs)."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import pipelines
import strategies
from pipelines import convert
from tests import fixtures
from tfapp import config as config_lib
from tfapp import host_loop, loop, run, tasks

EQUIVALENCE = textwrap.dedent("""
    import sys
    import numpy as np
    from tfapp import config as config_lib, run
    def weights(spl, model_dir):
        config = config_lib.Config(model="cnn", strategy=sys.argv[1], num_cpu_devices=int(sys.argv[2]) or None,
                                   steps_per_loop=spl, jit_compile="false", train_steps=48, eval_every=48,
                                   export=False, model_dir=model_dir).resolved()
        experiment = run.prepare(config)
        report = run.train(experiment)
        assert report["steps_per_loop"] == int(spl) and report["num_replicas"] == max(1, int(sys.argv[2]))
        return experiment.model.get_weights()
    one, sixteen = weights("1", sys.argv[3] + "/a"), weights("16", sys.argv[3] + "/b")
    print(max(float(np.max(np.abs(a - b))) for a, b in zip(one, sixteen)))
""")


@pytest.mark.parametrize("strategy, cpus", [("default", 0), ("mirrored", 2)])
def test_steps_per_loop_1_and_16_give_the_same_weights(tmp_path, strategy, cpus):
    out = subprocess.run([sys.executable, "-c", EQUIVALENCE, strategy, str(cpus), str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert float(out.stdout.strip().splitlines()[-1]) < 1e-5


def test_loop_sizes_cut_at_eval_boundaries_and_the_end():
    assert host_loop.loop_sizes(50, 20, 16) == [1, 16, 3, 16, 4, 10]
    assert host_loop.loop_sizes(5, 100, 64) == [1, 4]
    assert sum(host_loop.loop_sizes(1000, 7, 64)) == 1000


def _two_xla_steps(task_name, model_name, data, options, source=None):
    """Builds the model on `data`, runs two train steps and evaluates two batches with jit_compile=True (the
    evaluation step compiles too); returns the source."""
    task = tasks.get_task(task_name).for_model(model_name)
    config = config_lib.Config(task=task_name, model=model_name, strategy="default", data=data,
                               **options).resolved(smoke=True)
    source = source or run.load_source(config, task)
    model = run.build_model(config, task, source.spec)
    trainer = loop.Trainer(strategies.get_strategy("default"), model, run.build_optimizer(config), task.loss(),
                           task.metrics, config.batch_size, jit_compile=True)
    dataset = pipelines.train_dataset(source.splits["train"], task.preprocessor(source.spec), config.batch_size,
                                      seed=0, vectorized=task.vectorized_preprocess)
    for spec in tf.nest.flatten(dataset.element_spec[0]):
        assert all(dim is not None for dim in spec.shape), "TPUs need static batch shapes"
        assert spec.dtype != tf.string, "strings must not enter the compiled step"
    before = [w.copy() for w in model.get_weights()]
    values = trainer.train(iter(dataset), 2)
    assert np.isfinite(values["loss"])
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights())), model_name
    eval_data = pipelines.eval_dataset(source.splits["test"], task.preprocessor(source.spec), config.batch_size,
                                       source.num_examples["test"], vectorized=task.vectorized_preprocess).take(2)
    assert all(np.isfinite(value) for value in trainer.evaluate(eval_data).values()), model_name
    return source


# language_model: 127 s on the AVX2 CPU (Muon's XLA compile); `pytest -m slow` runs it
@pytest.mark.parametrize("task_name", [pytest.param(name, marks=pytest.mark.slow) if name == "language_model" else name
                                       for name in sorted(tasks.TASKS)])
def test_every_task_step_compiles_with_xla_and_static_shapes(task_name, tmp_path):
    """What TPUStrategy needs, checked on the CPU: each model's train step compiles with jit_compile=True."""
    data, options = fixtures.task_data(task_name, tmp_path)
    source = None
    for model_name in tasks.get_task(task_name).models:
        if model_name == "transfer":
            continue  # needs a local weights file; its head and the base are plain keras.layers
        source = _two_xla_steps(task_name, model_name, data, options, source)


@pytest.fixture(scope="module")
def data_kinds(tmp_path_factory):
    """{name: (--data, options)}: each kind of data file a task accepts, beyond the tasks' defaults."""
    root = tmp_path_factory.mktemp("kinds")
    embedded = os.path.join(os.path.dirname(pipelines.__file__), "data")
    digits = np.load(os.path.join(embedded, "digits.npz"))
    np.savez(root / "digits.npz", x=digits["x"], y=digits["y"])
    np.savez(root / "table.npz", x=digits["x"].reshape(len(digits["y"]), -1).astype(np.float32), y=digits["y"] % 2)
    categorical = fixtures.categorical_table(str(root / "categorical.csv"))
    convert.write_tfrecord(pipelines.load("embedded:digits"), str(root / "digits_tfrecord"), shards=2)
    convert.write_tfrecord(pipelines.load(f"csv:{categorical}", label_column="target"), str(root / "table_tfrecord"),
                           shards=1)
    convert.write_tfrecord(pipelines.load("embedded:stdlib_docs"), str(root / "text_tfrecord"), shards=1)
    return {
        "npz_images": (f"npz:{root}/digits.npz", {}),
        "tfrecord_images": (f"tfrecord:{root}/digits_tfrecord/*.tfrecord", {}),
        "csv_numeric": (f"csv:{embedded}/diabetes.csv", {"label_column": "target"}),
        "csv_categorical": (f"csv:{categorical}", {"label_column": "target"}),
        "npz_table": (f"npz:{root}/table.npz", {}),
        "tfrecord_categorical": (f"tfrecord:{root}/table_tfrecord/*.tfrecord", {}),
        "text_file": (f"text:{embedded}/stdlib_docs.tsv", {}),
        "tfrecord_text": (f"tfrecord:{root}/text_tfrecord/*.tfrecord", {}),
        "conll_file": (f"conll:{embedded}/ner_sample.conll", {}),
        "csv_series": (f"csv:{embedded}/co2.csv", {"time_column": "month", "value_column": "co2"}),
    }


@pytest.mark.parametrize("task_name,kind", [
    ("digits", "npz_images"), ("digits", "tfrecord_images"), ("image_classification", "npz_images"),
    ("image_classification", "tfrecord_images"), ("regression", "csv_numeric"), ("regression", "csv_categorical"),
    ("regression", "npz_table"), ("classification", "csv_categorical"), ("classification", "npz_table"),
    ("classification", "tfrecord_categorical"), ("text_classification", "text_file"),
    ("text_classification", "tfrecord_text"), ("token_classification", "conll_file"), ("forecasting", "csv_series")])
def test_default_model_compiles_with_xla_on_each_kind_of_data(task_name, kind, data_kinds):
    """The same on every kind of data a task takes: no string or dynamic shape reaches the compiled step."""
    data, options = data_kinds[kind]
    _two_xla_steps(task_name, tasks.get_task(task_name).default_model, data, options)


def _train_across_block_boundaries(trainer, task, source, block, blocks):
    """Loop sizes that cross block boundaries, and a new iterator half way; returns each call's mean loss."""
    losses = []
    for sizes in ((1, block, 7), (block + 6, 3)):
        # A new dataset, as the host loop builds after a NaN restore (iterators of one dataset share its
        # shuffle seed generator, so a second iterator's order depends on how far the first one read ahead).
        iterator = iter(pipelines.train_dataset(source.splits["train"], task.preprocessor(source.spec), 64,
                                                seed=0, vectorized=True, arrays=source.arrays["train"],
                                                blocks=blocks))
        trainer.reset_input()
        for size in sizes:
            losses.append(trainer.train(iterator, size)["loss"])
            assert 0 <= trainer.last_input_wait <= trainer.last_input_handover
    return losses


@pytest.mark.parametrize("task_name,data,model_name", [("digits", "embedded:digits", "mlp"),
                                                        ("regression", "embedded:diabetes", "linear")])
def test_block_and_overlapped_hand_over_train_exactly_like_one_batch_per_step(task_name, data, model_name):
    """One next() per K steps (blocks kept in variables, columns of one dtype stacked), and the next batch fetched
    while the step runs (kept between calls), over loop sizes that cross block boundaries and a new iterator half
    way = one next() per step. Diabetes has ten float columns: one stacked group."""
    import keras
    task = tasks.get_task(task_name)
    source = pipelines.load(data)
    config = config_lib.Config(task=task_name, model=model_name, strategy="default").resolved()
    strategy = strategies.get_strategy("default")
    block = pipelines.block_batches(source.arrays["train"], 64)
    assert block == pipelines.batching.MAX_BLOCK
    weights = []
    for blocks, overlap in ((False, False), (False, True), (True, False)):
        keras.utils.set_random_seed(0)
        model, optimizer = run.build_model(config, task, source.spec), run.build_optimizer(config)
        trainer = loop.Trainer(strategy, model, optimizer, task.loss(), task.metrics, 64,
                               block=block if blocks else None, overlap_input=overlap)
        assert trainer.overlap_input == overlap
        _train_across_block_boundaries(trainer, task, source, block, blocks)
        weights.append(model.get_weights())
    for other in weights[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(weights[0], other))


def test_xla_over_whole_blocks_trains_like_one_xla_step_per_batch():
    """jit_compile="block": one XLA program runs all the steps a block has left (a while loop slicing its batches);
    the same batches in the same order as one XLA call per step, so the weights agree (bit for bit on this CPU;
    the tolerance leaves room for XLA fusing a loop body differently elsewhere, a wrong batch is ~1e-2 off). Loop
    sizes cross block boundaries: blocks used up within a call, blocks continued by the next call, a new
    iterator. The steps over a block trace once whatever their start and count."""
    import keras
    task = tasks.get_task("digits")
    source = pipelines.load("embedded:digits")
    config = config_lib.Config(task="digits", model="mlp", strategy="default").resolved()
    strategy = strategies.get_strategy("default")
    block = pipelines.block_batches(source.arrays["train"], 64)
    weights = []
    for blocks in (False, True):
        keras.utils.set_random_seed(0)
        model, optimizer = run.build_model(config, task, source.spec), run.build_optimizer(config)
        trainer = loop.Trainer(strategy, model, optimizer, task.loss(), task.metrics, 64,
                               jit_compile="block" if blocks else True, block=block if blocks else None)
        assert trainer.jit_compile == ("block" if blocks else True)
        losses = _train_across_block_boundaries(trainer, task, source, block, blocks)
        if blocks:
            assert trainer._block_steps.experimental_get_tracing_count() == 1
        weights.append((losses, model.get_weights()))
    np.testing.assert_allclose(weights[0][0], weights[1][0], rtol=1e-5)
    for a, b in zip(weights[0][1], weights[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("overlap", [False, True])
def test_input_wait_shows_an_input_bound_run(overlap):
    """A pipeline that sleeps 20 ms per batch makes the loop wait: most of the train call is input wait, whether
    the batch is fetched before the step or while it runs."""
    import time
    task = tasks.get_task("digits")
    source = pipelines.load("embedded:digits")
    config = config_lib.Config(model="mlp", strategy="default").resolved()
    model, optimizer = run.build_model(config, task, source.spec), run.build_optimizer(config)

    def slow(x, y):
        tf.py_function(lambda: time.sleep(0.02), [], [])
        return x, y

    data = pipelines.train_dataset(source.splits["train"], task.preprocess, 32, seed=0, vectorized=True)
    data = data.map(slow).prefetch(1)  # the sleep stands for a slow decoder or a remote file system
    trainer = loop.Trainer(strategies.get_strategy("default"), model, optimizer, task.loss(), task.metrics, 32,
                           overlap_input=overlap)
    iterator = iter(data)
    trainer.train(iterator, 2)  # tracing
    start = time.perf_counter()
    trainer.train(iterator, 10)
    elapsed = time.perf_counter() - start
    assert trainer.last_input_wait > 0.5 * elapsed, (trainer.last_input_wait, elapsed)
    assert trainer.last_input_handover >= trainer.last_input_wait


def test_an_evaluation_traced_ahead_in_another_thread_is_used_as_is(tmp_path):
    """run.train traces the eval function in a background thread while training runs; the first evaluation then
    neither traces again nor reads a second iterator, and gives what an evaluation without it gives."""
    import threading
    config = config_lib.Config(model="mlp", train_steps=10, eval_every=10, export=False,
                               model_dir=str(tmp_path)).resolved()
    experiment = run.prepare(config)
    task = experiment.task

    def trainer():
        return loop.Trainer(experiment.strategy, experiment.model, experiment.optimizer, task.loss(), task.metrics,
                            config.batch_size)

    prepared, plain = trainer(), trainer()
    thread = threading.Thread(target=prepared.prepare_evaluate, args=(experiment.validation_data(), experiment.eval_steps))
    thread.start()
    thread.join()
    assert prepared._eval_steps.experimental_get_tracing_count() == 1
    iterator = prepared._eval_iterator
    results = prepared.evaluate(experiment.validation_data(), experiment.eval_steps)
    assert prepared._eval_steps.experimental_get_tracing_count() == 1 and prepared._eval_iterator is iterator
    assert results == plain.evaluate(experiment.validation_data(), experiment.eval_steps)
