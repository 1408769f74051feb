"""MultiWorkerMirroredStrategy: two local processes (TF_CONFIG on 127.0.0.1) train the smoke task together."""
import json
import os
import socket
import subprocess
import sys

import pytest

from tests.conftest import REPO, last_lines, read_report


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_workers(model_dir, workers, extra):
    """Two `tfapp-train --strategy=multi_worker` processes on loopback ports, worker 0 the chief."""
    processes = []
    for index in range(2):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
               "TF_CONFIG": json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})}
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "tfapp.cli.train", f"--model_dir={model_dir}", "--strategy=multi_worker",
             "--steps_per_loop=4", *extra],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return processes


def test_two_workers_report_the_same_final_loss(tmp_path):
    workers = [f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"]
    model_dir = str(tmp_path / "run")
    processes = _start_workers(model_dir, workers, ["--smoke"])
    outputs = last_lines(processes)
    # Summary lines carry the eval loss reduced over both workers: identical on both.
    assert outputs[0].split("|")[0] == outputs[1].split("|")[0]
    report = read_report(model_dir)  # written by the chief (worker 0) only
    assert report["num_replicas"] == 2 and report["strategy"] == "MultiWorkerMirroredStrategy"
    assert report["steps"] == 20
    assert f"test loss {report['final_metrics']['loss']:.4f}" in outputs[0]


@pytest.mark.slow  # 55 s on the AVX2 CPU; two workers training together stay in the default run
def test_a_killed_worker_ends_the_other_with_a_clear_error_and_both_resume(tmp_path):
    import time
    from tfapp import checkpoints
    model_dir = str(tmp_path / "run")
    workers = [f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"]
    extra = ["--model=mlp", "--checkpoint_every=40", "--eval_every=200", "--noexport"]
    chief, other = _start_workers(model_dir, workers, [*extra, "--train_steps=100000"])
    try:
        deadline = time.time() + 120
        while not checkpoints.latest(model_dir):
            assert time.time() < deadline and chief.poll() is None, chief.stderr.read()[-2000:]
            time.sleep(0.05)
        other.kill()
        killed_at = time.time()
        _, stderr = chief.communicate(timeout=60)  # no hang: the collective fails when the peer's link resets
        assert chief.returncode == 4, stderr[-2000:]
        assert time.time() - killed_at < 60
        line = stderr.strip().splitlines()[-1]
        assert line.startswith("tfapp-train: error: lost contact with another worker") and "resume" in line
    finally:
        for process in (chief, other):
            process.kill()
            process.communicate()
    saved = int(checkpoints.latest(model_dir).rsplit("-", 1)[1])
    workers = [f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"]
    restarted = _start_workers(model_dir, workers, [*extra, f"--train_steps={saved + 40}"])
    for process in restarted:
        stdout, stderr = process.communicate(timeout=240)
        assert process.returncode == 0, stderr[-2000:]
        assert "resuming from" in stdout
    report = read_report(model_dir)
    assert report["resumed_at_step"] == saved and report["steps"] == saved + 40
