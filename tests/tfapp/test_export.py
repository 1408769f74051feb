"""The SavedModel reloads in a process that imports only TensorFlow, and predicts what the trained model does."""
import json
import subprocess
import sys
import textwrap

import numpy as np

import pipelines
from tfapp import config as config_lib
from tfapp import export, run


def test_reload_with_tensorflow_only_matches_in_process_model(tmp_path):
    config = config_lib.Config(model_dir=str(tmp_path / "run"), strategy="default").resolved(smoke=True)
    experiment = run.prepare(config)
    content = run.train(experiment)
    pixels = np.stack([e["x"] for e in pipelines.load("embedded:digits").splits["test"]().take(5)
                       .as_numpy_iterator()]).astype("float32")
    expected = experiment.model(pixels[..., None], training=False).numpy()
    expected = np.exp(expected) / np.exp(expected).sum(-1, keepdims=True)
    code = textwrap.dedent(f"""
        import json, sys
        import numpy as np
        import tensorflow as tf
        loaded = tf.saved_model.load({content['export_path']!r})
        out = loaded.signatures["serving_default"](pixels=tf.constant(np.array(json.loads(sys.stdin.read()),
                                                                               dtype="float32")))
        assert not {{"tfapp", "pipelines", "strategies"}} & set(sys.modules), "only TensorFlow may be imported"
        print(json.dumps(out["probabilities"].numpy().tolist()))
    """)
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps(pixels.tolist()), capture_output=True,
                         text=True, timeout=120, cwd=str(tmp_path))
    assert out.returncode == 0, out.stderr[-3000:]
    np.testing.assert_allclose(np.array(json.loads(out.stdout)), expected, rtol=1e-4, atol=1e-5)


def test_versions_increase_and_never_overwrite(tmp_path):
    base = str(tmp_path / "export")
    assert export.next_version(base) == 1
    (tmp_path / "export" / "1").mkdir(parents=True)
    (tmp_path / "export" / "7").mkdir()
    (tmp_path / "export" / "tmp").mkdir()
    assert export.next_version(base) == 8
