"""Model selection: evaluations read the validation split, the best one is kept (on disk, across a resume), and the
test split is read once, at the end, on the kept weights; on both engines."""
import json
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO, read_report
from tfapp import host_loop

# A source whose test split counts the examples read from it, before and after training ended (a callback's
# on_train_end, which the host loop calls before it tests the kept weights).
COUNTING_RUN = """
import dataclasses, json, sys
import keras
import tensorflow as tf
import pipelines
from tfapp import config, run

reads = {"during_training": 0, "after_training": 0}
ended = []

def counted(location, options):
    source = pipelines.SOURCES["embedded"](location, options)
    def count(label):
        reads["after_training" if ended else "during_training"] += 1
        return label
    def test_split():
        def tally(example):
            label = tf.py_function(count, [example["y"]], example["y"].dtype)
            label.set_shape(example["y"].shape)
            return {**example, "y": label}
        return source.splits["test"]().map(tally)
    return dataclasses.replace(source, splits={**source.splits, "test": test_split})

class End(keras.callbacks.Callback):
    def on_train_end(self, logs=None):
        ended.append(True)

pipelines.SOURCES["counted"] = counted
run_config = config.Config(task="digits", model="mlp", data="counted:digits", backend=sys.argv[1],
                           model_dir=sys.argv[2], train_steps=60, eval_every=20, export=False).resolved()
report = run.run(run_config, callbacks=[End()])
print(json.dumps({**reads, "num_test": report["num_examples"]["test"]}))
"""


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_the_test_split_is_read_only_after_training(tmp_path, backend):
    if backend == "jax":
        pytest.importorskip("jax")
    model_dir = tmp_path / "run"
    out = subprocess.run([sys.executable, "-c", COUNTING_RUN, backend, str(model_dir)], cwd=REPO,
                         capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu"})
    assert out.returncode == 0, out.stderr[-3000:]
    counts = json.loads(out.stdout.strip().splitlines()[-1])
    assert counts["during_training"] == 0, counts  # three evaluations ran, all on validation
    assert counts["after_training"] >= counts["num_test"] == 359
    report = read_report(str(model_dir))
    assert report["test"]["step"] == report["kept_step"] == report["validation"]["best_step"]
    assert report["final_metrics"] == report["test"]["metrics"]
    with open(model_dir / "metrics.csv") as f:
        rows = [line.strip().split(",") for line in f][1:]
    assert sorted({row[1] for row in rows}) == ["test", "train", "validation"]
    assert [int(row[0]) for row in rows if row[1] == "validation" and row[2] == "accuracy"] == [20, 40, 60]
    assert {int(row[0]) for row in rows if row[1] == "test"} == {report["kept_step"]}


class _Manager:
    """The calls the host loop makes of a checkpoint manager for --keep=best, recorded."""

    def __init__(self):
        self.saved = None

    def save_best(self, step, metrics):
        self.saved = (step, metrics)

    def best(self):
        return self.saved


def _experiment(keep="best"):
    task = type("Task", (), {"main_metric": "accuracy", "main_metric_mode": "max"})()
    return type("Experiment", (), {"task": task, "config": type("Config", (), {"keep": keep})()})()


def test_the_best_evaluation_is_kept_and_a_resumed_run_knows_it():
    experiment, manager, outcome = _experiment(), _Manager(), host_loop.Outcome()
    for step, accuracy, loss in ((100, 0.90, 0.5), (200, 0.95, 0.3), (300, 0.93, 0.2)):
        outcome.eval_metrics = {"accuracy": accuracy, "loss": loss}
        host_loop._record_validation(experiment, manager, outcome, step)
    assert outcome.best_step == 200 and manager.saved == (200, {"accuracy": 0.95, "loss": 0.3})
    resumed = host_loop.Outcome()  # what run_loops starts from after a restart: the saved best
    resumed.best_step, resumed.best_metrics = manager.best()
    resumed.eval_metrics = {"accuracy": 0.94, "loss": 0.1}
    host_loop._record_validation(experiment, manager, resumed, 400)
    assert resumed.best_step == 200
    resumed.eval_metrics = {"accuracy": 0.95, "loss": 0.25}  # a tie on accuracy goes to the lower loss
    host_loop._record_validation(experiment, manager, resumed, 500)
    assert resumed.best_step == 500 and manager.saved[0] == 500


def test_keep_last_tests_the_last_weights(tmp_path):
    from tfapp import config as config_lib
    from tfapp import run
    report = run.run(config_lib.Config(model="mlp", model_dir=str(tmp_path / "run"), keep="last", export=False,
                                       steps_per_loop="8", jit_compile="false").resolved(smoke=True))
    assert report["keep"] == "last" and report["kept_step"] == report["steps"] == 20
    assert not (tmp_path / "run" / "checkpoints" / "best.json").exists()
    assert np.isfinite(report["final_metrics"]["loss"]) and report["validation"]["best_step"] in (10, 20)
