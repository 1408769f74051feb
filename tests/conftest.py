"""Shared test helpers: run the real CLI in a subprocess, quiet TensorFlow's start-up logs, a test-only cache."""
import json
import os
import subprocess
import sys
import tempfile

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Autotune decisions and the measured peak go to a cache of this test session, never the user's ~/.cache.
os.environ["TFAPP_CACHE_DIR"] = tempfile.mkdtemp(prefix="tfapp-test-cache-")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(args, module="tfapp.cli.train", timeout=300, env=None):
    """Runs `python -m module args…` from the repo root; returns the CompletedProcess (text mode)."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env=full_env)


def start_cli(args, module="tfapp.cli.train", env=None):
    """`python -m module args…` started in the background (a Popen with text pipes), for tests that signal it."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", module, *args], cwd=REPO, env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_checkpoint(model_dir, process, timeout=120):
    """Returns once model_dir holds a checkpoint; fails if `process` ended first or after `timeout` seconds."""
    import time
    from tfapp import checkpoints
    deadline = time.time() + timeout
    while time.time() < deadline:
        if checkpoints.latest(str(model_dir)):
            return
        assert process.poll() is None, process.communicate()[1][-2000:]
        time.sleep(0.02)
    raise AssertionError("no checkpoint appeared")


def last_lines(processes, timeout=240):
    """Waits for every process (each must exit 0) and returns the last stdout line of each; kills them all on the
    way out, whatever happened."""
    lines = []
    try:
        for process in processes:
            stdout, stderr = process.communicate(timeout=timeout)
            assert process.returncode == 0, stderr[-3000:]
            lines.append(stdout.strip().splitlines()[-1])
    finally:
        for process in processes:
            process.kill()
    return lines


SERVE_CODE = """
import json, sys
import numpy as np
import tensorflow as tf
inputs = json.loads(sys.stdin.read())
loaded = tf.saved_model.load(sys.argv[1])
out = loaded.signatures[sys.argv[2]](**{k: tf.constant(v) for k, v in inputs.items()})
assert not {"tfapp", "pipelines", "strategies"} & set(sys.modules), "only TensorFlow may be imported"
print(json.dumps({k: (np.asarray(v.numpy()).astype(str) if v.dtype == tf.string else v.numpy()).tolist()
                  for k, v in out.items()}))
"""


def serve_in_clean_process(export_path, inputs, signature="serving_default"):
    """Calls a signature of an export in a new process that imports only TensorFlow; returns its outputs
    as lists (strings decoded). `inputs`: {input name: JSON-able nested list}."""
    out = subprocess.run([sys.executable, "-c", SERVE_CODE, export_path, signature], input=json.dumps(inputs),
                         capture_output=True, text=True, timeout=120, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def read_report(model_dir):
    with open(os.path.join(model_dir, "report.json")) as f:
        return json.load(f)


@pytest.fixture
def cli():
    return run_cli
