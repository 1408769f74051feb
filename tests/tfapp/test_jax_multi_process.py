"""--backend=jax on two local processes (JAX distributed on 127.0.0.1, gloo collectives over CPU): each reads its
share of the data, both see the same loss, only process 0 writes the run directory; a killed peer ends the other."""
import os
import socket
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO, last_lines, read_report
from tfapp import checkpoints

pytest.importorskip("jax")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(model_dir, extra, heartbeat="30"):
    address = f"127.0.0.1:{_free_port()}"
    processes = []
    for index in range(2):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_DISTRIBUTION_JOB_ADDRESSES": address,
               "KERAS_DISTRIBUTION_NUM_PROCESSES": "2", "KERAS_DISTRIBUTION_PROCESS_ID": str(index),
               "TFAPP_JAX_HEARTBEAT_SECONDS": heartbeat}
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "tfapp.cli.train", f"--model_dir={model_dir}", "--backend=jax", *extra],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return processes


def test_two_jax_processes_train_together_and_only_process_0_writes(tmp_path):
    model_dir = str(tmp_path / "run")
    processes = _start(model_dir, ["--model=mlp", "--train_steps=60", "--eval_every=30", "--noexport"])
    outputs = last_lines(processes)
    # The eval metrics are computed on the global (both processes') batches: identical on both.
    assert outputs[0].split("|")[0] == outputs[1].split("|")[0]
    report = read_report(model_dir)
    assert report["num_replicas"] == 2 and "on 2 processes" in report["strategy"] and report["steps"] == 60
    # processes must not choose differently: nothing measured, 16 steps per loop on every process
    assert report["autotune"]["source"] == "rule" and report["steps_per_loop"] == 16
    assert f"test loss {report['final_metrics']['loss']:.4f}" in outputs[0]
    assert sorted(os.listdir(model_dir)) == ["checkpoints", "config.json", "curves.png", "metrics.csv",
                                             "report.json", "tensorboard"]


@pytest.mark.slow  # 52 s on the AVX2 CPU; two processes training together stay in the default run
def test_a_killed_jax_process_ends_the_other_with_one_line_and_both_resume(tmp_path):
    model_dir = str(tmp_path / "run")
    first, second = _start(model_dir, ["--model=mlp", "--train_steps=1000000", "--checkpoint_every=50",
                                       "--eval_every=100000", "--noexport"], heartbeat="5")
    try:
        deadline = time.time() + 120
        while not checkpoints.latest(model_dir):
            assert time.time() < deadline and first.poll() is None, first.communicate()[1][-2000:]
            time.sleep(0.05)
        second.kill()
        killed_at = time.time()
        _, stderr = first.communicate(timeout=90)
        assert first.returncode == 4 and time.time() - killed_at < 90, stderr[-2000:]
        line = stderr.strip().splitlines()[-1]
        assert line.startswith("tfapp-train: error: lost contact with another worker") and "resume" in line
    finally:
        for process in (first, second):
            process.kill()
            process.communicate()
    saved = int(checkpoints.latest(model_dir).rsplit("-", 1)[1].split(".")[0])
    restarted = _start(model_dir, ["--model=mlp", f"--train_steps={saved + 40}", "--checkpoint_every=50",
                                   "--eval_every=100000", "--noexport"])
    for process in restarted:
        stdout, stderr = process.communicate(timeout=240)
        assert process.returncode == 0, stderr[-2000:]
        assert "resuming from" in stdout
    assert read_report(model_dir)["resumed_at_step"] == saved
