"""The host side of training: loops of N steps, then progress, eval, checkpoints and callbacks between them.

    python -c "from tfapp import config, run; run.run(config.Config(steps_per_loop='16').resolved())"

Keras callbacks: `on_train_begin/end`, `on_train_batch_end` (once per loop, logs = loop means), and
`on_epoch_begin/end` around each evaluation ("epoch" = one eval period; logs carry `val_<metric>`), so
EarlyStopping, ReduceLROnPlateau-style and user callbacks work; `model.stop_training` ends the run at the next
evaluation (the last one is kept as final). Everything here runs between compiled loops, never inside them.
"""
import dataclasses
import sys
import time

import keras

from tfapp import checkpoints


@dataclasses.dataclass
class Outcome:
    steps: int = 0
    eval_metrics: dict = dataclasses.field(default_factory=dict)
    time_to_first_step: float = 0.0
    compile_seconds: float = 0.0
    timed_steps: int = 0          # steps after the first loop (which carries tracing/compilation)
    timed_seconds: float = 0.0
    input_wait_seconds: float = 0.0  # time the timed loops waited for input batches
    stopped_early: bool = False

    @property
    def input_wait_fraction(self):
        return self.input_wait_seconds / self.timed_seconds if self.timed_seconds else None

    @property
    def steps_per_second(self):
        return self.timed_steps / self.timed_seconds if self.timed_seconds else None


def loop_sizes(train_steps, eval_every, steps_per_loop):
    """Steps per trainer.train call: 1 first (time to first step), then steps_per_loop, cut at eval boundaries."""
    step, sizes = 0, []
    while step < train_steps:
        next_eval = (step // eval_every + 1) * eval_every
        size = min(1 if step == 0 else steps_per_loop, next_eval - step, train_steps - step)
        sizes.append(size)
        step += size
    return sizes


def _print_eval(step, total, train_values, eval_values):
    shown = "  ".join(f"{name} {value:.4f}" for name, value in eval_values.items())
    newline = "\n" if sys.stdout.isatty() else ""  # step off the live progress bar
    print(f"{newline}step {step}/{total}  train loss {train_values['loss']:.4f}  eval: {shown}", flush=True)


def _callbacks(experiment, callbacks):
    config = experiment.config
    callbacks = list(callbacks)
    if config.early_stopping_patience:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=f"val_{experiment.task.main_metric}", patience=config.early_stopping_patience,
            mode=experiment.task.main_metric_mode))
    return keras.callbacks.CallbackList(callbacks, model=experiment.model)


def run_loops(experiment, trainer, steps_per_loop, run_log, write_dir, start_time, callbacks=()):
    """Runs the whole schedule of loops; returns an Outcome. Logs rows into `run_log`."""
    config = experiment.config
    callback_list = _callbacks(experiment, callbacks)
    experiment.model.stop_training = False
    manager = checkpoints.manager(write_dir, experiment.model, experiment.optimizer)
    # A live bar on a terminal; in logs (CI, files) one line at the end plus the eval lines.
    # Values shown are the latest loop's means (stateful), not Progbar's running average of them.
    progress = keras.utils.Progbar(config.train_steps, unit_name="step", verbose=1 if sys.stdout.isatty() else 2,
                                   stateful_metrics=["loss", *(m.name for m in trainer.train_metrics)])
    iterator = iter(experiment.train_data)
    outcome, epoch = Outcome(), 0
    callback_list.on_train_begin()
    callback_list.on_epoch_begin(epoch)
    for size in loop_sizes(config.train_steps, config.eval_every, steps_per_loop):
        loop_start = time.perf_counter()
        train_values = trainer.train(iterator, size)
        elapsed = time.perf_counter() - loop_start
        train_values["learning_rate"] = float(keras.ops.convert_to_numpy(experiment.optimizer.learning_rate))
        if outcome.steps == 0:
            outcome.time_to_first_step, outcome.compile_seconds = time.time() - start_time, elapsed
        else:
            outcome.timed_steps, outcome.timed_seconds = outcome.timed_steps + size, outcome.timed_seconds + elapsed
            outcome.input_wait_seconds += trainer.last_input_wait
        outcome.steps += size
        run_log.log(outcome.steps, "train", train_values)
        progress.update(outcome.steps, values=[(k, v) for k, v in train_values.items() if k != "learning_rate"],
                        finalize=False)
        callback_list.on_train_batch_end(outcome.steps, logs=train_values)
        if outcome.steps % config.eval_every == 0 or outcome.steps == config.train_steps:
            outcome.eval_metrics = trainer.evaluate(experiment.eval_data)
            run_log.log(outcome.steps, "eval", outcome.eval_metrics)
            _print_eval(outcome.steps, config.train_steps, train_values, outcome.eval_metrics)
            manager.save(checkpoint_number=outcome.steps)
            run_log.flush()
            callback_list.on_epoch_end(epoch, logs={**train_values,
                                                    **{f"val_{k}": v for k, v in outcome.eval_metrics.items()}})
            epoch += 1
            if experiment.model.stop_training:
                outcome.stopped_early = outcome.steps < config.train_steps
                break
            callback_list.on_epoch_begin(epoch)
    progress.update(outcome.steps, finalize=True)
    callback_list.on_train_end()
    return outcome
