"""Stop at step N, resume, and get bit for bit what an uninterrupted run gets: every task's default model (Dropout
masks, augmentation and data order included) under --deterministic, on Default and Mirrored(2)."""
import json
import subprocess
import sys
import textwrap

import pytest

from tests import fixtures
from tests.conftest import REPO
from tfapp import tasks

# One process per case (Mirrored needs its logical CPUs before TensorFlow starts): a straight 20-step run, and the
# same run stopped at step 10 (SIGTERM, as a preemption) then resumed to 20 in a new Experiment, as a second
# `tfapp-train` would. (Stopping by a shorter --train_steps instead would change a cosine schedule's length.)
STOP_AND_RESUME = textwrap.dedent("""
    import dataclasses, json, os, signal, sys
    import keras
    import numpy as np
    import tensorflow as tf
    from tfapp import checkpoints, config as config_lib, run
    task, data, options, strategy, cpus, root, must_have_seeds = sys.argv[1:]

    class StopAt(keras.callbacks.Callback):
        def __init__(self, step):
            super().__init__()
            self.step = step
        def on_train_batch_end(self, step, logs=None):  # the host loop passes the step
            if step >= self.step:
                os.kill(os.getpid(), signal.SIGTERM)

    def train(name, stop_at=None):
        config = config_lib.Config(task=task, data=data, strategy=strategy, num_cpu_devices=int(cpus) or None,
                                   deterministic=True, steps_per_loop="4", export=False, model_dir=f"{root}/{name}",
                                   **json.loads(options)).resolved(smoke=True)
        config = dataclasses.replace(config, train_steps=20, eval_every=10, checkpoint_every=5)
        return run.train(run.prepare(config), callbacks=[StopAt(stop_at)] if stop_at else ())
    straight = train("straight")
    stopped = train("resumed", stop_at=10)
    assert stopped["status"] == "interrupted" and stopped["steps"] == 10, stopped
    resumed = train("resumed")
    assert resumed["resumed_at_step"] == 10, resumed["resumed_at_step"]
    def variables(name):
        reader = tf.train.load_checkpoint(checkpoints.latest(f"{root}/{name}"))
        return {key: reader.get_tensor(key) for key in reader.get_variable_to_shape_map()
                if "VARIABLE_VALUE" in key and not key.startswith("save_counter")}
    a, b = variables("straight"), variables("resumed")
    assert a.keys() == b.keys() and (any("seed_states" in key for key in a) or must_have_seeds == "0"), sorted(a)
    different = [key for key in a if not np.array_equal(a[key], b[key])]
    csv = [open(f"{root}/{name}/metrics.csv").read() for name in ("straight", "resumed")]
    print(json.dumps({"different": different, "metrics_equal": straight["final_metrics"] == resumed["final_metrics"],
                      "csv_equal": csv[0] == csv[1]}))
""")

# A model with Dropout and one without in the default run; the rest are `slow`.
FAST = {"digits", "regression"}
# Default models with Dropout: their seed-generator state must be in the checkpoint.
RANDOM_LAYERS = {"digits", "image_classification", "image_folder", "text_classification", "token_classification"}


def _cases():
    for strategy, cpus in (("default", 0), ("mirrored", 2)):
        for name in sorted(tasks.TASKS):
            marks = () if name in FAST and strategy == "default" else (pytest.mark.slow,)
            yield pytest.param(name, strategy, cpus, id=f"{name}-{strategy}", marks=marks)


@pytest.mark.parametrize("task_name,strategy,cpus", _cases())
def test_stop_and_resume_equals_an_uninterrupted_run(tmp_path, task_name, strategy, cpus):
    data, options = fixtures.task_data(task_name, tmp_path)
    out = subprocess.run([sys.executable, "-c", STOP_AND_RESUME, task_name, data, json.dumps(options), strategy,
                          str(cpus), str(tmp_path), str(int(task_name in RANDOM_LAYERS))],
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"different": [], "metrics_equal": True, "csv_equal": True}
