"""Shared test helpers: run the real CLI in a subprocess, and quiet TensorFlow's start-up logs."""
import json
import os
import subprocess
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(args, module="tfapp.cli.train", timeout=300, env=None):
    """Runs `python -m module args…` from the repo root; returns the CompletedProcess (text mode)."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env=full_env)


def read_report(model_dir):
    with open(os.path.join(model_dir, "report.json")) as f:
        return json.load(f)


@pytest.fixture
def cli():
    return run_cli
