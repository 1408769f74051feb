"""--backend=jax: tfapp's own JAX loop (tfapp.jax_loop) under keras.distribution.DataParallel, fed by the same tf.data
pipeline and driven by the same host loop: report, export, and the TensorFlow path's fault tests as JAX twins
(kill -9 and resume, SIGTERM, NaN, --noresume, a TensorFlow run's directory)."""
import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import pipelines
from tests.conftest import REPO, read_report, serve_in_clean_process, start_cli, wait_for_checkpoint
from tfapp import checkpoints, jax_checkpoints, run, tasks
from tfapp import config as config_lib
from tfapp.cli import export as export_cli

pytest.importorskip("jax")
# Two CPU devices, also on a machine with a GPU (where JAX would otherwise pick the GPU: one device)
TWO_CPU_DEVICES = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
FAULTS = ["--backend=jax", "--train_steps=600", "--eval_every=100", "--checkpoint_every=50", "--steps_per_loop=10",
          "--deterministic", "--noexport"]


def _restored_model(model_dir, kept=False):
    """The run's model, rebuilt on TensorFlow with the weights of its last (JAX) checkpoint, or (`kept`) of the
    checkpoint it kept (--keep=best: its best evaluation)."""
    config, trained_on_jax = export_cli.load_run_config(str(model_dir))
    assert trained_on_jax
    task = tasks.get_task(config.task)
    source = pipelines.load(config.data)
    model = run.build_model(config, task, source.spec)
    optimizer = run.build_optimizer(config)
    optimizer.build(model.trainable_variables)
    manager = jax_checkpoints.Manager(str(model_dir), model, optimizer)
    manager.restore(checkpoints.latest(str(model_dir)))
    if kept and manager.best():
        manager.restore_best()
    return model, optimizer, source


def _checkpoint_arrays(model_dir):
    with open(checkpoints.latest(str(model_dir)), "rb") as f:
        stored = np.load(f)
        return {name: stored[name] for name in stored.files}


def test_the_cpu_rule_compiles_a_conv_net_per_step_and_a_dense_one_per_loop():
    """XLA:CPU runs convolutions ~30x slower inside a loop: one jitted call per step for them, by the rule."""
    import keras
    from tfapp.engines import jax_engine
    conv = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3), keras.layers.Flatten(),
                             keras.layers.Dense(10)])
    dense = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10)])
    assert jax_engine.jit_rule("auto", conv, "cpu")[0] is True
    assert jax_engine.jit_rule("auto", dense, "cpu")[0] == "block"


def test_digits_on_two_jax_devices_trains_reports_and_exports(tmp_path, cli):
    # The MLP, one program per loop: the CNN's per-step programs on a CPU split into two devices deadlocked in
    # XLA:CPU's all-reduce in about a third to a half of the runs (docs/performance.md#figures-behind-the-code);
    # the MLP's ran 6 of 6.
    model_dir = tmp_path / "run"
    out = cli([f"--model_dir={model_dir}", "--backend=jax", "--model=mlp", "--train_steps=300", "--eval_every=100"],
              env=TWO_CPU_DEVICES)
    assert out.returncode == 0, out.stderr[-3000:]
    report = read_report(model_dir)
    assert report["backend"] == "jax" and report["num_replicas"] == 2 and "DataParallel" in report["strategy"]
    assert report["final_metrics"]["accuracy"] >= 0.95, report["final_metrics"]
    assert report["flops_per_step"] > 0 and 0 < report["mfu"] < 1 and report["autotune"]["source"] == "rule"
    assert report["autotune"]["choice"] == {"jit_compile": "block", "steps_per_loop": report["steps_per_loop"]}
    assert "set by" not in report["autotune"]["reason"] and "measurements" not in report["autotune"]
    # digits' train rows (1438, less the validation 10%): float32 x, int32 y
    assert report["rows_on_devices_bytes"] == 1295 * (64 + 1) * 4
    assert report["host_malloc"] is None  # a CPU split into devices keeps glibc's defaults (tfapp.host_memory)
    with open(model_dir / "metrics.csv") as f:
        assert sum(1 for line in f if ",validation,accuracy," in line) == 3
    assert (model_dir / "curves.png").exists() and report["export_path"] == str(model_dir / "export" / "1")
    # The JAX checkpoint's kept weights in a TensorFlow-backend model give what the export serves.
    model, _, source = _restored_model(model_dir, kept=True)
    pixels = np.stack([e["x"] for e in source.splits["test"]().take(4).as_numpy_iterator()]).astype("float32")
    served = serve_in_clean_process(report["export_path"], {"pixels": pixels.tolist()})
    logits = np.asarray(model(pixels[..., None], training=False))
    expected = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    np.testing.assert_allclose(served["probabilities"], expected, rtol=1e-4, atol=1e-5)


def test_text_task_runs_on_jax_with_the_tf_data_vectoriser(tmp_path, cli):
    out = cli([f"--model_dir={tmp_path}/run", "--backend=jax", "--task=text_classification", "--smoke",
               "--noexport"], env=TWO_CPU_DEVICES)
    assert out.returncode == 0, out.stderr[-3000:]
    assert read_report(str(tmp_path / "run"))["final_metrics"]["accuracy"] > 0


def test_jax_backend_rejects_a_tf_strategy_and_unsupported_settings(tmp_path, cli):
    out = cli([f"--model_dir={tmp_path}/run", "--backend=jax", "--strategy=mirrored"])
    assert out.returncode == 2 and not os.path.exists(tmp_path / "run")
    assert "--strategy=mirrored: the jax backend always runs keras.distribution.DataParallel" in \
        out.stderr.strip().splitlines()[-1]
    with pytest.raises(config_lib.ConfigError, match="--jit_compile=false: the jax backend always compiles"):
        config_lib.Config(backend="jax", jit_compile="false").resolved()


def test_missing_jax_is_a_one_line_error(monkeypatch):
    import importlib.util
    from tfapp.cli import train as train_cli
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "jax" else real(name, *a))
    with pytest.raises(config_lib.ConfigError, match=r'--backend=jax: JAX is not installed in this Python; pip '
                                                    r'install -e ".\[jax\]" \(CPU\), pip install "jax\[cuda12\]"'):
        train_cli._use_jax(config_lib.Config(backend="jax").resolved(smoke=True))


def test_missing_jax_ends_the_command_with_one_line(tmp_path):
    """As after the README's install (no JAX): `tfapp-train --backend=jax` stops with one line, exit 2, nothing written
    (before, Keras's import of jax ended it in a 35-line ModuleNotFoundError)."""
    code = ("import sys, runpy; sys.modules['jax'] = None; "  # `import jax` fails, find_spec('jax') is None
            f"sys.argv = ['tfapp-train', '--backend=jax', '--model_dir={tmp_path / 'run'}']; "
            "runpy.run_module('tfapp.cli.train', run_name='__main__')")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "KERAS_BACKEND": ""})
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stderr.strip().splitlines() == [
        'tfapp-train: error: --backend=jax: JAX is not installed in this Python; pip install -e ".[jax]" (CPU), '
        'pip install "jax[cuda12]" (NVIDIA GPU) or pip install "jax[tpu]" (Cloud TPU VM)']
    assert not (tmp_path / "run").exists()


def _start(model_dir, extra=()):
    return start_cli([f"--model_dir={model_dir}", *FAULTS, *extra])


# digits/cnn: Dropout's seed-generator state must survive the kill too.
@pytest.mark.slow  # 91 s; the SIGTERM-and-resume JAX twin and the TF kill -9 test stay in the default run
def test_kill_9_then_resume_equals_uninterrupted_run_on_jax(tmp_path, cli):
    straight = cli([f"--model_dir={tmp_path / 'straight'}", *FAULTS])
    assert straight.returncode == 0, straight.stderr[-2000:]
    killed_dir = tmp_path / "killed"
    process = _start(killed_dir)
    wait_for_checkpoint(killed_dir, process)
    time.sleep(random.Random(0).uniform(0.05, 0.5))  # a pseudo-random step after the first checkpoint
    process.send_signal(signal.SIGKILL)
    process.communicate()
    saved_step = int(checkpoints.latest(str(killed_dir)).rsplit("-", 1)[1].split(".")[0])
    assert saved_step < 600, "the run finished before the kill: nothing was tested"
    resumed = cli([f"--model_dir={killed_dir}", *FAULTS])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from" in resumed.stdout
    report = read_report(str(killed_dir))
    assert report["resumed_at_step"] == saved_step and report["steps"] == 600
    a, b = _checkpoint_arrays(tmp_path / "straight"), _checkpoint_arrays(killed_dir)
    assert a.keys() == b.keys() and len(a) > 10
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert read_report(str(tmp_path / "straight"))["final_metrics"] == report["final_metrics"]
    assert (tmp_path / "straight" / "metrics.csv").read_text() == (killed_dir / "metrics.csv").read_text()


def test_sigterm_checkpoints_and_resumes_on_jax(tmp_path, cli):
    model_dir = tmp_path / "run"
    process = _start(model_dir, ["--train_steps=100000"])
    wait_for_checkpoint(model_dir, process)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr[-2000:]
    last = stdout.strip().splitlines()[-1]
    assert last.startswith("SIGTERM: stopped at step ") and f"--model_dir={model_dir}" in last
    step = int(last.split("step ")[1].split()[0])
    assert checkpoints.latest(str(model_dir)).endswith(f"ckpt-{step}.npz")
    assert not (model_dir / "report.json").exists()
    resumed = cli([f"--model_dir={model_dir}", *FAULTS, f"--train_steps={step + 20}"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert read_report(str(model_dir))["resumed_at_step"] == step


def test_nan_loss_on_jax_stops_with_the_step(tmp_path, cli):
    out = cli([f"--model_dir={tmp_path / 'nan'}", "--backend=jax", "--model=mlp", "--learning_rate=1e12",
               "--train_steps=400", "--checkpoint_every=10", "--steps_per_loop=10", "--noexport"])
    assert out.returncode == 3, out.stderr[-2000:]
    line = out.stderr.strip().splitlines()[-1]
    assert line.startswith("tfapp-train: error: loss became NaN/Inf in the loop ending at step ")


ON_NAN_RESTORE = """
import json, sys, time
from tfapp import config as config_lib, host_loop, report, run
config = config_lib.Config(model="mlp", backend="jax", steps_per_loop="5", jit_compile="true", export=False,
                           on_nan="restore", train_steps=40, eval_every=20, checkpoint_every=10, batch_size=32,
                           model_dir=sys.argv[1]).resolved()
experiment = run.prepare(config)
trainer, _, _ = run.choose_trainer(experiment)
real_start, calls = trainer.start, []
iterations = next(i for i, v in enumerate(experiment.optimizer.variables) if v is experiment.optimizer.iterations)

def start_with_one_nan(iterator, size):  # the host loop dispatches loops with start (maybe one ahead)
    calls.append(int(trainer._state[2][iterations]))  # the step the loop starts from
    loop = real_start(iterator, size)
    if len(calls) == 4:  # loops start at 0, 1, 6, 10: the one from 10 to 15 is poisoned
        real_result = loop.result
        loop.result = lambda: {**real_result(), "loss": float("nan")}
    return loop

trainer.start = start_with_one_nan
outcome = host_loop.run_loops(experiment, trainer, 5, report.RunLog(config.model_dir), config.model_dir, time.time())
print(json.dumps({"restores": outcome.nan_restores, "steps": outcome.steps, "calls": calls,
                  "learning_rate": float(experiment.optimizer.learning_rate.numpy())}))
"""


def test_on_nan_restore_reloads_and_halves_the_learning_rate_on_jax(tmp_path):
    out = subprocess.run([sys.executable, "-c", ON_NAN_RESTORE, str(tmp_path / "r")], cwd=REPO, capture_output=True,
                         text=True, timeout=300, env={**os.environ, "KERAS_BACKEND": "jax"})
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["restores"] == [15] and result["steps"] == 40
    assert result["calls"][:4] == [0, 1, 6, 10]
    assert result["calls"].count(10) == 2  # restarted from the step-10 checkpoint (a loop dispatched ahead dropped)
    assert result["learning_rate"] == pytest.approx(config_lib.Config(model="mlp").resolved().learning_rate / 2)


@pytest.mark.slow
def test_noresume_and_a_tensorflow_run_directory_on_jax(tmp_path, cli):
    model_dir = tmp_path / "run"
    args = [f"--model_dir={model_dir}", "--backend=jax", "--smoke", "--noexport"]
    assert cli(args).returncode == 0
    before = (model_dir / "metrics.csv").read_text()
    fresh = cli([*args, "--noresume"])
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    assert (model_dir / "metrics.csv").read_text() == before and (tmp_path / "run-2" / "report.json").exists()
    tf_run = tmp_path / "tf"
    assert cli([f"--model_dir={tf_run}", "--smoke", "--noexport"]).returncode == 0
    out = cli([f"--model_dir={tf_run}", "--backend=jax", "--smoke", "--noexport"])
    assert out.returncode == 2 and "--backend='tensorflow' there, 'jax' now" in out.stderr.strip().splitlines()[-1]


def test_jax_checkpoints_round_trip_on_a_ram_file_system_and_keep_the_last_three():
    """The JAX engine's checkpoint files go through tf.io.gfile (numpy only, so this runs on TensorFlow)."""
    config = config_lib.Config(model="mlp", train_steps=10).resolved()
    task, source = tasks.get_task("digits"), pipelines.load("embedded:digits")
    model = run.build_model(config, task, source.spec)
    optimizer = run.build_optimizer(config)
    optimizer.build(model.trainable_variables)
    manager = jax_checkpoints.Manager("ram://jax-ckpt", model, optimizer)
    original = [v.numpy().copy() for v in model.variables]
    for step in (10, 20, 30, 40):
        manager.save(checkpoint_number=step)
    assert manager.latest_checkpoint == "ram://jax-ckpt/checkpoints/ckpt-40.npz"
    import tensorflow as tf
    assert sorted(tf.io.gfile.listdir("ram://jax-ckpt/checkpoints")) == [
        "checkpoint.json", "ckpt-20.npz", "ckpt-30.npz", "ckpt-40.npz"]
    for variable in model.trainable_variables:
        variable.assign(np.zeros(variable.shape, variable.dtype))
    manager.restore(manager.latest_checkpoint)
    for variable, value in zip(model.variables, original):
        np.testing.assert_array_equal(variable.numpy(), value)
    other = run.build_model(config_lib.Config(model="cnn").resolved(), task, source.spec)
    with pytest.raises(ValueError, match="ckpt-40.npz: holds"):
        jax_checkpoints.Manager("ram://jax-ckpt", other, optimizer).restore(manager.latest_checkpoint)
