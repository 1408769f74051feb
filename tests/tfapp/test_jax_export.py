"""--backend=jax writes its SavedModel in the training process (tfapp.jax_export): the task's own signatures around a
jax2tf-converted model. Served in a clean TensorFlow process, it answers as the TensorFlow-backend export of the same
checkpoint (`tfapp-export`, a process of its own) does."""
import os

import numpy as np
import pytest

from tests.conftest import read_report, run_cli, serve_in_clean_process

pytest.importorskip("jax")

# task -> (flags, inputs of serving_default)
CASES = {
    "digits": (["--model=mlp"], {"pixels": (np.arange(2 * 64).reshape(2, 8, 8) % 17).astype("float32").tolist()}),
    "text_classification": (["--model=transformer"], {"text": ["Return the sum of a list of numbers.",
                                                                "Open a socket and read from it."]}),
    "language_model": ([], {"text": ["ROMEO:", "To be, or not"]}),
}


def _program_in_process(export_path):
    """The in-process export carries the model as an XlaCallModule op; the TensorFlow one as TF ops."""
    with open(os.path.join(export_path, "saved_model.pb"), "rb") as f:
        return b"XlaCallModule" in f.read()


@pytest.mark.parametrize("task", [
    "digits", "language_model",
    # 43 s: a second check of the string-in path (a lookup layer's tables saved beside the converted program)
    pytest.param("text_classification", marks=pytest.mark.slow)])
def test_the_in_process_jax_export_serves_what_a_tensorflow_export_serves(tmp_path, task):
    flags, inputs = CASES[task]
    model_dir = tmp_path / "run"
    out = run_cli([f"--model_dir={model_dir}", f"--task={task}", "--backend=jax", "--smoke", *flags],
                  env={"JAX_PLATFORMS": "cpu"})
    assert out.returncode == 0, out.stderr[-3000:]
    assert "warning" not in out.stderr  # no fallback to the TensorFlow process
    report = read_report(str(model_dir))
    in_process = report["export_path"]
    assert in_process == str(model_dir / "export" / "1") and _program_in_process(in_process)
    again = run_cli([f"--model_dir={model_dir}"], module="tfapp.cli.export")  # the same checkpoint, exported by TF
    assert again.returncode == 0, again.stderr[-3000:]
    by_tensorflow = str(model_dir / "export" / "2")
    assert not _program_in_process(by_tensorflow)
    served, expected = serve_in_clean_process(in_process, inputs), serve_in_clean_process(by_tensorflow, inputs)
    assert served.keys() == expected.keys()
    for name, value in expected.items():
        if isinstance(np.asarray(value).flat[0], str):
            assert served[name] == value, name
        else:
            np.testing.assert_allclose(served[name], value, rtol=1e-4, atol=1e-4, err_msg=name)
