"""tfapp.fit and --task/--model/--data=py: your own model, loss and data through tfapp's engine: trained,
resumed bit for bit after kill -9, exported and served; the README's example runs as written."""
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import REPO, read_report, run_cli, start_cli, wait_for_checkpoint

# A user's script: a subclassed MLP with a custom loss on the digits arrays, trained by tfapp.fit.
OWN_RUN = """
import sys
if sys.argv[3:] == ["mirrored"]:  # two logical CPUs, set before TensorFlow starts (as a user's script must)
    import strategies.resolve
    strategies.resolve.split_cpu(2)
import keras
import numpy as np
from sklearn.datasets import load_digits
import tfapp

class MLP(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(64, activation="relu")
        self.out = keras.layers.Dense(10)

    def call(self, x):
        return self.out(self.hidden(keras.ops.reshape(x, (-1, 64)) / 16.0))

def smoothed_loss(y_true, logits):  # a custom loss: cross-entropy with label smoothing
    onehot = keras.ops.one_hot(keras.ops.cast(y_true, "int32"), 10) * 0.9 + 0.01
    return keras.losses.categorical_crossentropy(onehot, logits, from_logits=True)

x, y = load_digits(return_X_y=True)
keras.utils.set_random_seed(0)
run = tfapp.fit(MLP(), (x.reshape(-1, 8, 8).astype("float32"), y), loss=smoothed_loss,
                metrics=["sparse_categorical_accuracy"], optimizer=keras.optimizers.Adam(2e-3),
                steps=int(sys.argv[2]), batch_size=32, model_dir=sys.argv[1], eval_every=50, checkpoint_every=25,
                steps_per_loop=5, deterministic=True, export=sys.argv[3:] == ["export"],
                **({"strategy": "mirrored", "num_cpu_devices": 2} if sys.argv[3:] == ["mirrored"] else {}))
np.savez(sys.argv[1] + "/kept_weights.npz", *run.model.get_weights())
print("RESULT", run.report["final_metrics"]["sparse_categorical_accuracy"])
"""


def _env(backend):
    return {**os.environ, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "2"}


def _own_run(model_dir, backend, steps=300, extra=()):
    return subprocess.run([sys.executable, "-c", OWN_RUN, str(model_dir), str(steps), *extra], cwd=REPO,
                          capture_output=True, text=True, timeout=300, env=_env(backend))


def _weights(model_dir):
    with np.load(os.path.join(model_dir, "kept_weights.npz")) as content:
        return [content[key] for key in sorted(content.files, key=lambda k: int(k.split("_")[1]))]


@pytest.mark.parametrize("backend, extra", [("tensorflow", ()), ("jax", ()), pytest.param(
    "tensorflow", ("mirrored",), marks=pytest.mark.slow)], ids=["default", "jax", "mirrored2"])  # 60 s
def test_own_model_killed_and_resumed_equals_an_uninterrupted_run(tmp_path, backend, extra):
    if backend == "jax":
        pytest.importorskip("jax")
    straight = _own_run(tmp_path / "straight", backend, extra=extra)
    assert straight.returncode == 0, straight.stderr[-3000:]
    accuracy = float(straight.stdout.split("RESULT")[-1])
    assert accuracy > 0.9, straight.stdout[-2000:]  # it learned: digits with an MLP reach ~0.95 in 300 steps
    killed = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-c", OWN_RUN, str(killed), "300", *extra], cwd=REPO, env=_env(backend),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_checkpoint(killed, process)
    time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert not (killed / "report.json").exists(), "the run finished before the kill: nothing was tested"
    resumed = _own_run(killed, backend, extra=extra)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stdout
    report = read_report(str(killed))
    assert report["resumed_at_step"] > 0
    assert report["num_replicas"] == (2 if extra else 1)
    for a, b in zip(_weights(tmp_path / "straight"), _weights(killed), strict=True):
        np.testing.assert_array_equal(a, b)
    with open(tmp_path / "straight" / "metrics.csv") as f, open(killed / "metrics.csv") as g:
        assert f.read() == g.read()


def test_own_model_function_on_a_built_in_task_then_tfapp_export_imports_it_again(tmp_path):
    model_dir = tmp_path / "run"
    out = run_cli([f"--model_dir={model_dir}", "--task=digits", "--model=tests.own_code:small_mlp",
                   "--train_steps=150", "--eval_every=50"])
    assert out.returncode == 0, out.stderr[-3000:]
    report = read_report(str(model_dir))
    assert report["config"]["model"] == "tests.own_code:small_mlp"  # config.json: what resume and export import
    assert report["final_metrics"]["accuracy"] > 0.8
    exported = run_cli([f"--model_dir={model_dir}", f"--export_dir={tmp_path / 'again'}"], module="tfapp.cli.export")
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert (tmp_path / "again" / "1" / "saved_model.pb").exists()


def test_own_task_with_its_own_data_function(tmp_path):
    model_dir = tmp_path / "run"
    out = run_cli([f"--model_dir={model_dir}", "--task=tests.own_code:TASK"])
    assert out.returncode == 0, out.stderr[-3000:]
    report = read_report(str(model_dir))
    assert report["config"]["data"] == "py:tests.own_code:digits_arrays" and report["steps"] == 100
    assert report["num_examples"]["test"] == 359  # 20% of 1,797 held out by tfapp
    assert report["final_metrics"]["accuracy"] > 0.85
    assert (model_dir / "export" / "1" / "saved_model.pb").exists()  # Task's default serving: the model's inputs


@pytest.mark.parametrize("args, message", [
    (["--model=tests.nowhere:build"], "--model=tests.nowhere:build: cannot import tests.nowhere (ModuleNotFoundError"),
    (["--model=tests.own_code:nothing"], "--model=tests.own_code:nothing: tests.own_code has no 'nothing'"),
    (["--task=tests.own_code:small_mlp"], "--task=tests.own_code:small_mlp: function is not a tfapp.Task"),
    (["--data=py:tests.own_code:absent"], "--data=py:tests.own_code:absent: tests.own_code has no 'absent'"),
])
def test_an_import_that_fails_stops_with_one_line(tmp_path, args, message):
    model_dir = tmp_path / "never"
    out = run_cli([f"--model_dir={model_dir}", *args])
    assert out.returncode == 2, out.stderr[-2000:]
    lines = [line for line in out.stderr.strip().splitlines() if line.strip()]
    assert lines[-1].startswith("tfapp-train: error: ") and message in lines[-1], out.stderr[-2000:]
    assert not model_dir.exists()


def test_the_readme_example_runs_as_written(tmp_path):
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    section = readme.split("## Your own model", 1)[1]
    example = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(example.strip().splitlines()) <= 22 and "tfapp.fit(" in example
    out = subprocess.run([sys.executable, "-c", example], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300, env={**_env("tensorflow"), "PYTHONPATH": REPO})
    assert out.returncode == 0, out.stderr[-3000:]
    final = eval(out.stdout.strip().splitlines()[-1])  # the dict it prints  # noqa: S307
    assert final["accuracy"] > 0.9, out.stdout[-2000:]  # 4 linearly-separable-ish classes
    served = subprocess.run([sys.executable, "-c", SERVE, str(tmp_path / "runs" / "own-mlp" / "export" / "1")],
                            capture_output=True, text=True, timeout=120, env=_env("tensorflow"))
    assert served.returncode == 0, served.stderr[-3000:]
    assert served.stdout.strip().splitlines()[-1] == "x {'outputs': [2, 4]}"


SERVE = """
import sys
import numpy as np
import tensorflow as tf
served = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
name = list(served.structured_input_signature[1])[0]
shape = [2 if d is None else d for d in served.structured_input_signature[1][name].shape.as_list()]
outputs = served(**{name: tf.constant(np.random.default_rng(0).uniform(0, 16, shape), tf.float32)})
print(name, {k: v.shape.as_list() for k, v in outputs.items()})
"""


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_own_subclassed_model_exports_and_serves_in_a_clean_tensorflow_process(tmp_path, backend):
    if backend == "jax":
        pytest.importorskip("jax")
    model_dir = tmp_path / "run"
    out = _own_run(model_dir, backend, steps=60, extra=["export"])
    assert out.returncode == 0, out.stderr[-3000:]
    served = subprocess.run([sys.executable, "-c", SERVE, str(model_dir / "export" / "1")], capture_output=True,
                            text=True, timeout=120, env=_env("tensorflow"))
    assert served.returncode == 0, served.stderr[-3000:]
    assert served.stdout.strip().splitlines()[-1] == "x {'outputs': [2, 10]}"
    if backend == "jax" and platform.libc_ver()[0] == "glibc":  # one CPU device: its scratch reused
        assert json.loads((model_dir / "report.json").read_text())["host_malloc"].startswith("glibc mallopt")


STREAMED_RUN = """
import json, sys
import keras
import numpy as np
import tensorflow as tf
from sklearn.datasets import load_digits
import tfapp
from pipelines import python_source, stream_source

python_source.IN_MEMORY_BYTES = 0  # as a dataset larger than memory would: streamed, never gathered
streamed = []
real = stream_source.from_datasets
stream_source.from_datasets = lambda *args: streamed.append(args[0]) or real(*args)
x, y = load_digits(return_X_y=True)
images = tf.data.Dataset.from_tensor_slices((x.reshape(-1, 8, 8, 1), y)).map(lambda image, label: (image / 16, label))
model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(64, activation="relu"),
                          keras.layers.Dense(10)])
model.compile(optimizer=keras.optimizers.Adam(3e-3), metrics=["sparse_categorical_accuracy"],
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
run = tfapp.fit(model, images.take(1500), test=images.skip(1500), steps=300, batch_size=32, model_dir=sys.argv[1],
                export=False)
print(json.dumps({"streamed": streamed, "steps": run.report["steps"],
                  "accuracy": run.report["final_metrics"]["sparse_categorical_accuracy"]}))
"""


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_a_tf_data_dataset_over_the_memory_limit_streams_and_trains(tmp_path, backend):
    if backend == "jax":
        pytest.importorskip("jax")
    out = subprocess.run([sys.executable, "-c", STREAMED_RUN, str(tmp_path / "run")], cwd=REPO, capture_output=True,
                         text=True, timeout=300, env=_env(backend))
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(result["streamed"]) == 1 and result["steps"] == 300
    assert result["accuracy"] > 0.85  # the 297 test images, read once at the end (in memory: ~0.9)
