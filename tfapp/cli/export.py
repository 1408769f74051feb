"""`tfapp-export`: a SavedModel (and optionally a TFLite file) from a run directory's last checkpoint.

    tfapp-export --model_dir=runs/digits-20261123-132430                  # -> runs/…/export/<next version>/
    tfapp-export --model_dir=runs/digits-… --export_dir=/serving/digits --tflite

The run's config.json says how to rebuild the model; the data source is read again to rebuild what the task
fitted on it (vocabularies, normalisation statistics), so it must still be reachable. The export is written on
the default strategy, whatever strategy trained the run. Versions are integers, increasing, never overwritten
(TF Serving's layout). `--tflite` adds `<version>/model.tflite` of the `serving_default` signature.
"""
import dataclasses
import json
import shutil
import sys
import tempfile

from tfapp.cli import tf_logs  # noqa: E402

tf_logs.quiet()  # TensorFlow's C++ start-up notices stay out (--verbose shows them)

from absl import app, flags, logging  # noqa: E402
from tfapp.cli.lean_import import lean_imports  # noqa: E402

with lean_imports():  # optional imports of TF and Keras (see lean_import)
    import tensorflow as tf

    from tfapp import checkpoints, export, jax_checkpoints, report
    from tfapp import run as run_lib
    from tfapp.config import Config, ConfigError

FLAGS = flags.FLAGS


def define_flags():
    tf_logs.define_flag()
    flags.DEFINE_string("model_dir", None, "Run directory written by tfapp-train (config.json + checkpoints/).")
    flags.DEFINE_string("export_dir", None, "Where versions go (local, gs://, …). Default: <model_dir>/export.")
    flags.DEFINE_boolean("tflite", False, "Also convert serving_default to <version>/model.tflite.")


def load_run_config(model_dir):
    """(the resolved Config a run was trained with, set to rebuild it on the default strategy and TensorFlow,
    whether it was trained on JAX)."""
    path = report.join(model_dir, checkpoints.CONFIG_FILE)
    if not tf.io.gfile.exists(path):
        raise ConfigError(f"--model_dir={model_dir}: no {checkpoints.CONFIG_FILE} (not a tfapp run directory)")
    if checkpoints.latest(model_dir) is None:
        raise ConfigError(f"--model_dir={model_dir}: no checkpoint to export")
    with tf.io.gfile.GFile(path) as f:
        saved = json.load(f)
    names = {field.name for field in dataclasses.fields(Config)}
    config = Config(**{k: v for k, v in saved.items() if k in names})
    return dataclasses.replace(config, strategy="default", num_cpu_devices=None, tpu=None, resume=True,
                               backend="tensorflow"), config.backend == "jax"


def _prepare_from_jax_run(config, model_dir):
    """The experiment of a --backend=jax run, rebuilt on TensorFlow with the weights of its last checkpoint
    (tfapp.jax_checkpoints: arrays by variable position, readable without JAX)."""
    scratch = tempfile.mkdtemp(prefix="tfapp-export-")
    try:
        experiment = run_lib.prepare(dataclasses.replace(config, model_dir=scratch, resume=False))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    jax_checkpoints.Manager(model_dir, experiment.model, experiment.optimizer).restore(checkpoints.latest(model_dir))
    return experiment


def _restore_kept(experiment, model_dir, trained_on_jax):
    """With --keep=best (the run's), the best evaluation's weights instead of the last checkpoint's."""
    best = checkpoints.read_best(model_dir)
    if experiment.config.keep != "best" or best is None:
        return
    if trained_on_jax:
        jax_checkpoints.Manager(model_dir, experiment.model, experiment.optimizer).restore_best()
    else:
        tf.train.Checkpoint(model=experiment.model).restore(best[2]).expect_partial()


def export_run(model_dir, export_dir=None, tflite=False):
    """Restores the run's kept checkpoint (--keep: the best evaluation's or the last) and writes the next export
    version; returns (path, tflite path)."""
    config, trained_on_jax = load_run_config(model_dir)
    experiment = _prepare_from_jax_run(config, model_dir) if trained_on_jax else run_lib.prepare(config)
    _restore_kept(experiment, model_dir, trained_on_jax)
    config, task = experiment.config, experiment.task
    path = export.export_saved_model(
        experiment.model, lambda: task.model_builder(config.model)(config, experiment.source.spec), task.serving,
        export_dir or report.join(model_dir, "export"), experiment.source.spec)
    if not tflite:
        return path, None
    try:
        return path, export.export_tflite(path)
    except export.TFLiteError:
        tf.io.gfile.rmtree(path)  # nothing half-written: no SavedModel version without the asked-for TFLite file
        raise


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    logging.set_verbosity(logging.WARNING)
    try:
        if not FLAGS.model_dir:
            raise ConfigError("--model_dir is required")
        path, tflite_path = export_run(FLAGS.model_dir, FLAGS.export_dir, FLAGS.tflite)
    except ValueError as error:
        print(f"tfapp-export: error: {error}", file=sys.stderr)
        return 2
    print(f"exported {path}" + (f" and {tflite_path}" if tflite_path else ""), flush=True)
    return 0


def run():
    define_flags()
    app.run(main)


if __name__ == "__main__":
    run()
