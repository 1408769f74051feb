"""Faults: kill -9 and resume (bitwise equal to an uninterrupted run), SIGTERM, NaN loss, interrupted checkpoint
writes, --deterministic, --noresume, unwritable or full model_dir."""
import os
import random
import signal
import time

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import read_report, run_cli, start_cli, wait_for_checkpoint
from tfapp import checkpoints, host_loop, run
from tfapp import config as config_lib

COMMON = ["--model=mlp", "--train_steps=600", "--eval_every=100", "--checkpoint_every=50", "--steps_per_loop=10",
          "--deterministic", "--noexport", "--autotune_seconds=0.3"]


def _start(model_dir, extra=()):
    return start_cli([f"--model_dir={model_dir}", *COMMON, *extra])


def _final_variables(model_dir):
    reader = tf.train.load_checkpoint(checkpoints.latest(str(model_dir)))
    # Model weights appear under the optimizer's paths too (the object graph stores each variable once).
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if "VARIABLE_VALUE" in name and not name.startswith("save_counter")}


def _metrics(model_dir):
    with open(os.path.join(model_dir, "metrics.csv")) as f:
        return f.read()


# digits/cnn: its Dropout masks come from a Keras seed generator whose state must survive the kill too.
@pytest.mark.parametrize("extra", [["--model=cnn"], pytest.param(
    ["--model=cnn", "--strategy=mirrored", "--num_cpu_devices=2"], marks=pytest.mark.slow)],  # 122 s on AVX2
                         ids=["default", "mirrored2"])
def test_kill_9_then_resume_equals_uninterrupted_run(tmp_path, extra):
    straight = run_cli([f"--model_dir={tmp_path / 'straight'}", *COMMON, *extra])
    assert straight.returncode == 0, straight.stderr[-2000:]
    killed_dir = tmp_path / "killed"
    process = _start(killed_dir, extra)
    wait_for_checkpoint(killed_dir, process)
    time.sleep(random.Random(0).uniform(0.05, 0.5))  # a pseudo-random step after the first checkpoint
    process.send_signal(signal.SIGKILL)
    process.communicate()
    saved_step = int(checkpoints.latest(str(killed_dir)).rsplit("-", 1)[1])
    assert saved_step < 600, "the run finished before the kill: nothing was tested"
    resumed = run_cli([f"--model_dir={killed_dir}", *COMMON, *extra])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from" in resumed.stdout
    report = read_report(str(killed_dir))
    assert report["resumed_at_step"] == saved_step and report["steps"] == 600
    a, b = _final_variables(tmp_path / "straight"), _final_variables(killed_dir)
    assert a.keys() == b.keys() and a
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert read_report(str(tmp_path / "straight"))["final_metrics"] == report["final_metrics"]
    assert _metrics(tmp_path / "straight") == _metrics(killed_dir)


# SIGINT goes through the same handler as SIGTERM: a second check, kept out of the default run.
@pytest.mark.parametrize("signal_name", ["SIGTERM", pytest.param("SIGINT", marks=pytest.mark.slow)])
def test_sigterm_checkpoints_and_says_how_to_resume(tmp_path, signal_name):
    model_dir = tmp_path / "run"
    process = _start(model_dir)
    wait_for_checkpoint(model_dir, process)
    process.send_signal(getattr(signal, signal_name))
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr[-2000:]
    last = stdout.strip().splitlines()[-1]
    assert last.startswith(f"{signal_name}: stopped at step ") and f"--model_dir={model_dir}" in last
    step = int(last.split("step ")[1].split()[0])
    assert checkpoints.latest(str(model_dir)).endswith(f"ckpt-{step}")
    assert not (model_dir / "report.json").exists()  # not finished: no final report
    resumed = run_cli([f"--model_dir={model_dir}", *COMMON])
    assert resumed.returncode == 0 and read_report(str(model_dir))["resumed_at_step"] == step


@pytest.mark.slow  # 31 s; kill -9 / resume compares deterministic metrics bit for bit
def test_deterministic_runs_write_identical_metrics(tmp_path):
    # auto settings too: under --deterministic they are fixed instead of measured (measuring is time-dependent)
    for name in ("a", "b"):
        out = run_cli([f"--model_dir={tmp_path / name}", *COMMON, "--train_steps=200", "--steps_per_loop=auto",
                       "--jit_compile=auto"])
        assert out.returncode == 0, out.stderr[-2000:]
    assert _metrics(tmp_path / "a") == _metrics(tmp_path / "b")
    record = read_report(str(tmp_path / "a"))["autotune"]
    assert record["source"] == "fixed" and record["reason"].startswith("--deterministic")


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    model_dir = tmp_path / "nan"
    out = run_cli([f"--model_dir={model_dir}", "--model=mlp", "--learning_rate=1e12", "--train_steps=400",
                   "--checkpoint_every=10", "--steps_per_loop=10", "--jit_compile=false", "--noexport"])
    assert out.returncode == 3, out.stderr[-2000:]
    line = out.stderr.strip().splitlines()[-1]
    assert line.startswith("tfapp-train: error: loss became NaN/Inf in the loop ending at step ")
    assert "--on_nan=restore" in line
    latest = checkpoints.latest(str(model_dir))
    if latest:  # the NaN loop itself was never saved
        step = int(line.split("ending at step ")[1].split(";")[0])
        assert int(latest.rsplit("-", 1)[1]) < step
        for value in _final_variables(model_dir).values():
            assert np.all(np.isfinite(value))


def test_on_nan_restore_reloads_and_halves_the_learning_rate(tmp_path):
    config = config_lib.Config(model="mlp", strategy="default", steps_per_loop="5", jit_compile="false",
                               export=False, on_nan="restore", train_steps=40, eval_every=20, checkpoint_every=10,
                               batch_size=32, model_dir=str(tmp_path / "r")).resolved()
    experiment = run.prepare(config)
    trainer, _, _ = run.choose_trainer(experiment)
    real_train, calls = trainer.train, []

    def train_with_one_nan(iterator, size):
        values = real_train(iterator, size)
        calls.append(int(experiment.optimizer.iterations.numpy()))
        if len(calls) == 4:  # loops end at 1, 5, 10, 15: the one ending at 15 is poisoned
            values["loss"] = float("nan")
        return values

    trainer.train = train_with_one_nan
    from tfapp import report
    outcome = host_loop.run_loops(experiment, trainer, 5, report.RunLog(config.model_dir), config.model_dir,
                                  time.time())
    assert outcome.nan_restores == [15] and outcome.steps == 40
    assert calls[4] == 15  # restarted from the step-10 checkpoint: 10 + 5
    assert float(experiment.optimizer.learning_rate.numpy()) == pytest.approx(config.learning_rate / 2)


def test_interrupted_checkpoint_write_never_replaces_the_last_good_one(tmp_path):
    model_dir = tmp_path / "run"
    out = run_cli([f"--model_dir={model_dir}", *COMMON, "--train_steps=100"])
    assert out.returncode == 0
    good = checkpoints.latest(str(model_dir))
    # What a kill in the middle of saving step 150 leaves: its files half written, the state file untouched.
    (model_dir / "checkpoints" / "ckpt-150.index").write_bytes(b"\x00" * 17)
    (model_dir / "checkpoints" / "ckpt-150.data-00000-of-00001").write_bytes(b"\x00" * 100)
    assert checkpoints.latest(str(model_dir)) == good
    resumed = run_cli([f"--model_dir={model_dir}", *COMMON, "--train_steps=200"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert read_report(str(model_dir))["resumed_at_step"] == 100


def test_noresume_starts_fresh_in_a_new_directory(tmp_path):
    model_dir = tmp_path / "run"
    assert run_cli([f"--model_dir={model_dir}", "--smoke", "--noexport"]).returncode == 0
    before = _metrics(model_dir)
    out = run_cli([f"--model_dir={model_dir}", "--smoke", "--noexport", "--noresume"])
    assert out.returncode == 0 and out.stdout.strip().endswith(f"{model_dir}-2")
    assert _metrics(model_dir) == before and (tmp_path / "run-2" / "report.json").exists()


def test_resume_with_other_settings_is_refused(tmp_path):
    model_dir = tmp_path / "run"
    assert run_cli([f"--model_dir={model_dir}", "--smoke", "--noexport"]).returncode == 0
    out = run_cli([f"--model_dir={model_dir}", "--smoke", "--noexport", "--model=mlp"])
    assert out.returncode == 2 and "cannot resume a run with other settings (--model='cnn' there" in out.stderr
    out = run_cli([f"--model_dir={model_dir}", "--smoke", "--noexport", "--optimizer=muon"])
    assert out.returncode == 2 and "(--optimizer='adam' there, 'muon' now)" in out.stderr


def test_unwritable_model_dir_fails_before_training(tmp_path):
    (tmp_path / "file").write_text("a file, not a folder")
    out = run_cli([f"--model_dir={tmp_path / 'file' / 'run'}", "--smoke"])
    assert out.returncode == 2 and "not writable" in out.stderr.strip().splitlines()[-1]


def test_full_disk_fails_before_training(tmp_path, monkeypatch):
    import collections
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(checkpoints.shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 2**20, 2**20))
    config = config_lib.Config(model_dir=str(tmp_path / "run"), strategy="default").resolved(smoke=True)
    with pytest.raises(config_lib.ConfigError, match="only 1 MiB free on its disk"):
        run.prepare(config)
    assert not (tmp_path / "run").exists()
