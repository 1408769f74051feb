"""--backend=jax: Keras fit under keras.distribution.DataParallel over two CPU devices, fed by the same tf.data
pipeline; the weights it writes export through TensorFlow and serve the same predictions."""
import json
import os

import numpy as np
import pytest

import pipelines
from tests.conftest import read_report, serve_in_clean_process
from tfapp import config as config_lib
from tfapp import run, tasks

pytest.importorskip("jax")
TWO_CPU_DEVICES = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}


def test_digits_on_two_jax_devices_trains_reports_and_exports(tmp_path, cli):
    model_dir = tmp_path / "run"
    out = cli([f"--model_dir={model_dir}", "--backend=jax", "--train_steps=300", "--eval_every=100"],
              env=TWO_CPU_DEVICES)
    assert out.returncode == 0, out.stderr[-3000:]
    report = read_report(model_dir)
    assert report["backend"] == "jax" and report["num_replicas"] == 2 and "DataParallel" in report["strategy"]
    assert report["final_metrics"]["accuracy"] >= 0.95, report["final_metrics"]
    with open(model_dir / "metrics.csv") as f:
        assert sum(1 for line in f if ",eval,accuracy," in line) == 3
    assert (model_dir / "curves.png").exists() and report["export_path"] == str(model_dir / "export" / "1")
    # The JAX-trained weights in a TensorFlow-backend model give what the export serves.
    config = config_lib.Config(**{k: v for k, v in json.load(open(model_dir / "config.json")).items()})
    task = tasks.get_task("digits")
    source = pipelines.load("embedded:digits")
    model = run.build_model(config, task, source.spec)
    model.load_weights(str(model_dir / "model.weights.h5"))
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


def test_jax_backend_rejects_a_tf_strategy(tmp_path, cli):
    out = cli([f"--model_dir={tmp_path}/run", "--backend=jax", "--strategy=mirrored"])
    assert out.returncode == 2 and not os.path.exists(tmp_path / "run")
    assert "--strategy=mirrored: the jax backend always runs keras.distribution.DataParallel" in \
        out.stderr.strip().splitlines()[-1]


def test_missing_jax_is_a_one_line_error(monkeypatch):
    import importlib.util
    from tfapp.cli import train as train_cli
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "jax" else real(name, *a))
    with pytest.raises(config_lib.ConfigError, match=r'--backend=jax: JAX is not installed; pip install -e ".\[jax\]"'):
        train_cli._run_jax(config_lib.Config(backend="jax").resolved(smoke=True))


def test_a_finished_jax_run_is_never_trained_into_again(tmp_path, cli):
    model_dir = tmp_path / "run"
    args = [f"--model_dir={model_dir}", "--backend=jax", "--smoke", "--noexport"]
    assert cli(args, env=TWO_CPU_DEVICES).returncode == 0
    before = (model_dir / "metrics.csv").read_text()
    again = cli(args, env=TWO_CPU_DEVICES)
    assert again.returncode == 2 and "cannot resume yet; use --noresume" in again.stderr.strip().splitlines()[-1]
    fresh = cli([*args, "--noresume"], env=TWO_CPU_DEVICES)
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    assert (model_dir / "metrics.csv").read_text() == before and (tmp_path / "run-2" / "report.json").exists()
