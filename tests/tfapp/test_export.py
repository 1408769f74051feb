"""The SavedModel reloads in a process that imports only TensorFlow, and predicts what the trained model does."""
import os
import subprocess
import sys

import numpy as np
import pytest

import pipelines
from tests.conftest import serve_in_clean_process
from tfapp import config as config_lib
from tfapp import export, run


def test_reload_with_tensorflow_only_matches_in_process_model(tmp_path):
    config = config_lib.Config(model_dir=str(tmp_path / "run"), strategy="default").resolved(smoke=True)
    experiment = run.prepare(config)
    content = run.train(experiment)
    pixels = np.stack([e["x"] for e in pipelines.load("embedded:digits").splits["test"]().take(5)
                       .as_numpy_iterator()]).astype("float32")
    logits = experiment.model(pixels[..., None], training=False).numpy()
    probabilities = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    served = serve_in_clean_process(content["export_path"], {"pixels": pixels.tolist()})
    np.testing.assert_allclose(np.array(served["probabilities"]), probabilities, rtol=1e-4, atol=1e-5)
    assert served["class_id"] == np.argmax(logits, -1).tolist()
    served = serve_in_clean_process(content["export_path"], {"pixels": pixels.tolist()}, "predict_logits")
    np.testing.assert_allclose(np.array(served["logits"]), logits, rtol=1e-4, atol=1e-4)


def test_versions_increase_and_never_overwrite(tmp_path):
    base = str(tmp_path / "export")
    assert export.next_version(base) == 1
    (tmp_path / "export" / "1").mkdir(parents=True)
    (tmp_path / "export" / "7").mkdir()
    (tmp_path / "export" / "tmp").mkdir()
    assert export.next_version(base) == 8


@pytest.mark.slow  # 56 s; the export and TFLite-refusal tests stay
def test_tfapp_export_cli_writes_a_new_version_whose_tflite_matches(tmp_path, cli):
    model_dir = tmp_path / "run"
    trained = cli([f"--model_dir={model_dir}", "--smoke", "--noexport"])
    assert trained.returncode == 0, trained.stderr[-2000:]
    out = cli([f"--model_dir={model_dir}", "--tflite"], module="tfapp.cli.export")
    assert out.returncode == 0, out.stderr[-2000:]
    path = model_dir / "export" / "1"
    assert f"exported {path} and {path}/model.tflite" in out.stdout
    shown = subprocess.run([os.path.join(os.path.dirname(sys.executable), "saved_model_cli"), "show", "--all",
                            "--dir", str(path)], capture_output=True, text=True, timeout=120)
    assert "signature_def['serving_default']" in shown.stdout and "signature_def['predict_logits']" in shown.stdout
    pixels = np.stack([e["x"] for e in pipelines.load("embedded:digits").splits["test"]().take(8)
                       .as_numpy_iterator()]).astype("float32")
    import tensorflow as tf
    expected = tf.saved_model.load(str(path)).signatures["serving_default"](pixels=tf.constant(pixels))
    runner = export._interpreter((path / "model.tflite").read_bytes()).get_signature_runner("serving_default")
    actual = runner(pixels=pixels)
    np.testing.assert_allclose(actual["probabilities"], expected["probabilities"].numpy(), atol=1e-5)
    np.testing.assert_array_equal(actual["class_id"], expected["class_id"].numpy())
    again = cli([f"--model_dir={model_dir}"], module="tfapp.cli.export")
    assert again.returncode == 0 and (model_dir / "export" / "2").is_dir()  # never overwritten


def test_tflite_of_a_string_signature_is_refused_and_leaves_no_version(tmp_path, cli):
    model_dir = tmp_path / "run"
    trained = cli([f"--model_dir={model_dir}", "--task=text_classification", "--smoke", "--noexport"])
    assert trained.returncode == 0, trained.stderr[-2000:]
    out = cli([f"--model_dir={model_dir}", "--tflite"], module="tfapp.cli.export")
    assert out.returncode == 2 and not (model_dir / "export" / "1").exists()
    assert "--tflite: serving_default takes strings (text)" in out.stderr.strip().splitlines()[-1]


def test_tfapp_export_of_a_directory_without_a_run_is_one_line(tmp_path, cli):
    out = cli([f"--model_dir={tmp_path}"], module="tfapp.cli.export")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == (f"tfapp-export: error: --model_dir={tmp_path}: no config.json "
                                                   "(not a tfapp run directory)")
