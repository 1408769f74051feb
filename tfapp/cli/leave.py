"""Ends a one-process command as soon as its work is written, instead of after the interpreter's teardown.

    tfapp-train            # the shell prompt is back right after the summary line

Measured on the 2-core CPU: between the last line `tfapp-train` prints and the process's exit, Python's
finalization of TensorFlow and Keras took 1.5-6 s (main thread in C++ destructors, no Python frame), for which
nothing waits: every file of the run is closed by then (checkpoints are synchronous, the TensorBoard writers and
metrics.csv are closed, report.json and the export are written). `run(app_main)` runs an absl main and then leaves
with `os._exit` after flushing stdout and stderr (and the stderr filter of `tf_logs`). Runs of several processes
(TF_CONFIG, or JAX's multi-process runtime) exit normally: their runtimes hold shutdown barriers that the
other processes wait on.
"""
import os
import sys

from absl import app

from tfapp.cli import tf_logs


def several_processes(environ=None):
    """A TF multi-worker cluster (TF_CONFIG), or JAX's multi-process runtime started (strategies.jax_mesh)."""
    environ = os.environ if environ is None else environ
    jax = sys.modules.get("jax")  # TensorFlow imports part of jax: `distributed` exists only once JAX is in use
    return bool(environ.get("TF_CONFIG")) or bool(
        jax is not None and hasattr(jax, "distributed") and jax.distributed.is_initialized())


def run(main):
    """absl's app.run(main), then an immediate exit with main's status (a normal exit for several processes)."""
    try:
        app.run(main)
    except SystemExit as leaving:
        if several_processes():
            raise
        code = leaving.code
        if isinstance(code, str):  # sys.exit("message"): Python would print it and exit with 1
            print(code, file=sys.stderr)
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        tf_logs.restore()  # the filter thread copies what is left in its pipe to the real stderr
        os._exit(code or 0)
