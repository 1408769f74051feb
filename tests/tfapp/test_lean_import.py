"""tfapp-train's start-up skips the optional packages TF and Keras import but a run never uses, and they import
normally afterwards."""
import os
import subprocess
import sys

from tfapp.cli import lean_import

CHECK = r"""
import sys
import tfapp.cli.train  # TensorFlow, Keras and the run's modules, under lean_imports()
skipped = [name for name in ("jax", "matplotlib", "sklearn") if name in sys.modules]
import matplotlib.figure  # curves.png, after start-up
print(skipped, "matplotlib" in sys.modules, "tensorflow" in sys.modules)
"""


def test_tensorflow_imports_without_jax_matplotlib_and_sklearn_which_import_afterwards():
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "KERAS_BACKEND": "tensorflow"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[-2] == "[] True True"


def test_names_look_absent_inside_only_and_imported_modules_are_left_alone(monkeypatch):
    monkeypatch.setattr(lean_import, "OPTIONAL", ("json", "tfapp_not_imported_anywhere"))
    import json  # already imported: left as it is
    with lean_import.lean_imports():
        assert sys.modules["json"] is json
        try:
            import tfapp_not_imported_anywhere  # noqa: F401
        except ImportError as error:
            assert "halted" in str(error)
        else:
            raise AssertionError("the import should fail inside lean_imports()")
    assert "tfapp_not_imported_anywhere" not in sys.modules  # absent as before: a later import searches normally
