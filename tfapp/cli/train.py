"""`tfapp-train`: train, evaluate, plot and export one task. All logic lives in tfapp.run.

    tfapp-train                                   # digits on embedded data, default strategy
    tfapp-train --strategy=mirrored --num_cpu_devices=2 --steps_per_loop=16
    tfapp-train --flagfile=my_experiment.flags

Bad flag values end with one line on stderr naming the flag, exit status 2, and nothing written.
"""
import os
import sys
import time

START_TIME = time.time()
# Where to get JAX: the CPU build comes with the project's extra; accelerators need their own build of jaxlib.
JAX_MISSING = ("--backend=jax: JAX is not installed in this Python; pip install -e \".[jax]\" (CPU), "
               "pip install \"jax[cuda12]\" (NVIDIA GPU) or pip install \"jax[tpu]\" (Cloud TPU VM)")


def _jax_missing():
    import importlib.util
    return importlib.util.find_spec("jax") is None


if "--backend=jax" in sys.argv[1:] or "--backend" in sys.argv[1:-1] and \
        sys.argv[sys.argv.index("--backend") + 1] == "jax":
    if _jax_missing():  # Keras would import jax next and end in a long ModuleNotFoundError
        print(f"tfapp-train: error: {JAX_MISSING}", file=sys.stderr)
        sys.exit(2)
    os.environ.setdefault("KERAS_BACKEND", "jax")  # before Keras is imported; a --flagfile's is re-executed
from tfapp.cli import leave, tf_logs  # noqa: E402

tf_logs.quiet()  # TensorFlow's C++ start-up notices stay out of the run log (--verbose shows them)

from absl import app  # noqa: E402
from absl import logging  # noqa: E402

from tfapp.cli.lean_import import lean_imports  # noqa: E402

with lean_imports():  # optional imports of TF and Keras (JAX, pyplot, scikit-learn): ~2 s of start-up
    from tfapp import flags as tfapp_flags
    import tensorflow as tf

    from tfapp import checkpoints
    from tfapp import host_loop
    from tfapp import run as run_lib
    from tfapp.config import ConfigError

IMPORTED_TIME = time.time()


def summary_line(content):
    metrics = ", ".join(f"{name} {value:.4f}" for name, value in content["final_metrics"].items())
    speed = f"{content['steps_per_second']:.1f} steps/s" if content["steps_per_second"] else "n/a steps/s"
    return (f"{content['task']}/{content['config']['model']}: test {metrics} | {content['steps']} steps, {speed}, "
            f"{content['num_replicas']} replica(s) | wall {content['wall_time_s']:.1f} s | "
            f"{content['config']['model_dir']}")


def _use_jax(config):
    """--backend=jax: re-runs this command with KERAS_BACKEND=jax (Keras picks its backend once, at import)."""
    import keras
    if _jax_missing():
        raise ConfigError(JAX_MISSING)
    if keras.backend.backend() != "jax":
        sys.stdout.flush()
        tf_logs.restore()  # the pipe's reader does not survive exec; the new process filters for itself
        os.execve(sys.executable, [sys.executable, "-m", "tfapp.cli.train", *sys.argv[1:]],
                  {**os.environ, "KERAS_BACKEND": "jax"})


def _lost_contact(experiment, error, message):
    last = checkpoints.latest(experiment.config.model_dir) or "none yet"
    print(f"tfapp-train: error: lost contact with another worker ({type(error).__name__}: "
          f"{message.strip().splitlines()[0][:200]}); restart every worker with the same command to resume "
          f"from the last checkpoint ({last})", file=sys.stderr)


def _jax_peer_error(experiment, error):
    """True for a JAX runtime error of a multi-process run (a collective failed: another process is gone)."""
    if experiment.engine != "jax" or type(error).__name__ != "JaxRuntimeError":
        return False
    import jax
    return jax.process_count() > 1


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    logging.set_verbosity(logging.WARNING)  # TF's INFO lines (checkpoint sharding, assets) are noise here
    try:
        config = tfapp_flags.config_from_flags()
        if config.backend == "jax":
            _use_jax(config)
        experiment = run_lib.prepare(config)
    except ValueError as error:  # ConfigError, StrategyError, DataError: bad input, nothing written yet
        if os.environ.get("TFAPP_TRACEBACK"):
            raise
        print(f"tfapp-train: error: {error}", file=sys.stderr)
        return 2
    experiment.startup["imports_s"] = IMPORTED_TIME - START_TIME
    if experiment.resumed_from:
        print(f"resuming from {experiment.resumed_from}", flush=True)
    try:
        content = run_lib.train(experiment, start_time=START_TIME)
    except host_loop.NanLossError as error:
        print(f"tfapp-train: error: {error}", file=sys.stderr)
        return 3
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError) as error:
        if experiment.strategy.num_replicas_in_sync == 1 or os.environ.get("TFAPP_TRACEBACK"):
            raise
        _lost_contact(experiment, error, error.message)
        return 4
    except RuntimeError as error:  # jax.errors.JaxRuntimeError: a collective whose peer process died
        if not _jax_peer_error(experiment, error) or os.environ.get("TFAPP_TRACEBACK"):
            raise
        _lost_contact(experiment, error, str(error))
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(4)  # not a normal exit: JAX's shutdown barrier would wait for the dead peer, then abort
    if content.get("status") == "interrupted":
        print(f"{content['signal']}: stopped at step {content['steps']} after saving a checkpoint; resume with the "
              f"same command and --model_dir={content['model_dir']}", flush=True)
        return 0
    print(summary_line(content), flush=True)
    return 0


def run():
    tfapp_flags.define_flags()
    tf_logs.define_flag()  # --verbose
    leave.run(main)  # absl's app.run, then an exit without the seconds of interpreter teardown


if __name__ == "__main__":
    run()
