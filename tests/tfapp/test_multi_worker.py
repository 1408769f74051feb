"""MultiWorkerMirroredStrategy: two local processes (TF_CONFIG on 127.0.0.1) train the smoke task together."""
import json
import os
import socket
import subprocess
import sys

from tests.conftest import REPO, read_report


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_workers_report_the_same_final_loss(tmp_path):
    workers = [f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"]
    model_dir = str(tmp_path / "run")
    processes = []
    for index in range(2):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
               "TF_CONFIG": json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})}
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "tfapp.cli.train", f"--model_dir={model_dir}", "--smoke",
             "--strategy=multi_worker", "--steps_per_loop=4"],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = []
    try:
        for process in processes:
            stdout, stderr = process.communicate(timeout=240)
            assert process.returncode == 0, stderr[-3000:]
            outputs.append(stdout.strip().splitlines()[-1])
    finally:
        for process in processes:
            process.kill()
    # Summary lines carry the eval loss reduced over both workers: identical on both.
    assert outputs[0].split("|")[0] == outputs[1].split("|")[0]
    report = read_report(model_dir)  # written by the chief (worker 0) only
    assert report["num_replicas"] == 2 and report["strategy"] == "MultiWorkerMirroredStrategy"
    assert report["steps"] == 20
    assert f"test loss {report['final_metrics']['loss']:.4f}" in outputs[0]
