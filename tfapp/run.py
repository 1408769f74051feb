"""One training run, end to end, from a Config: the engine builds it, `tfapp.training` trains it.

    python -c "from tfapp import config, run; run.run(config.Config(task='digits').resolved(smoke=True))"

`prepare(config)` does everything that can fail on bad input (devices, data, model) on the engine `--backend`
names (`tfapp.engines`) and writes nothing; `train(experiment)` then creates the model_dir and writes checkpoints,
metrics.csv, TensorBoard events, curves.png, report.json and the SavedModel. `run` is the two in a row; the CLIs
and notebooks call it (library code imports `tfapp.engines` and `tfapp.training` instead).
"""
import time

from tfapp import engines
# The pieces both engines build a run from (tfapp.experiment), and the trainer: kept importable from here, where
# they used to live.
from tfapp.experiment import (Experiment, augmenter, build_model, build_optimizer, choose_precision,  # noqa: F401
                              learning_rate_schedule, load_source, resolve_run_dir, timed)
from tfapp.training import extra_metrics, train  # noqa: F401


def prepare(config):
    """The Experiment of a resolved Config, built by its engine (resuming from model_dir's checkpoint when there is
    one); raises ValueError subclasses on bad input and writes nothing."""
    return engines.get(config.backend).prepare(config)


def choose_trainer(experiment, on_traced=None):
    """(trainer, steps per loop, the autotune record for report.json) from the experiment's engine."""
    return engines.get(experiment.engine).choose_trainer(experiment, on_traced=on_traced)


def run(config, start_time=None, callbacks=()):
    """prepare + train for a resolved Config; returns the report dict."""
    start_time = start_time or time.time()
    return train(prepare(config), start_time=start_time, callbacks=callbacks)
