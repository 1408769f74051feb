"""The host side of training: loops of N steps, then progress, eval, checkpoints and callbacks between them.

    python -c "from tfapp import config, run; run.run(config.Config(steps_per_loop='16').resolved())"

Evaluations read the validation split; the best of them (the task's main metric) is kept on disk with --keep=best
and its weights restored at the end, where the test split is read once, on the kept weights (`finish`).
Keras callbacks: `on_train_begin/end`, `on_train_batch_end` (once per loop, logs = loop means), and
`on_epoch_begin/end` around each evaluation ("epoch" = one eval period; logs carry `val_<metric>` of the validation
split), so EarlyStopping and user callbacks work; `model.stop_training` ends the run at the next evaluation.
Faults handled here, at loop boundaries: SIGTERM/SIGINT (finish the loop, checkpoint, stop), a NaN/Inf loss
(stop with the last good checkpoint kept, or restore it with half the learning rate). Everything here runs
between compiled loops, never inside them; with a trainer that can dispatch a loop without waiting (`start`, the
JAX engine) it runs while the next loop already computes, wherever no evaluation, checkpoint, signal or
batch-watching callback needs the state at the boundary.
"""
import dataclasses
import math
import signal
import statistics
import sys
import time
from typing import Optional

import keras

from tfapp import checkpoints


class NanLossError(RuntimeError):
    """The training loss became NaN or Inf; the message names the step and the last good checkpoint."""


@dataclasses.dataclass
class Outcome:
    start_step: int = 0
    steps: int = 0
    eval_metrics: dict = dataclasses.field(default_factory=dict)  # the last validation metrics
    baselines: Optional[dict] = None      # the task's simple references on the test split (majority class, …)
    time_to_first_step: float = 0.0
    compile_seconds: float = 0.0
    timed_steps: int = 0          # steps after the first loop (which carries tracing/compilation)
    # … and their wall seconds, the host's work between loops included (logging, progress, callbacks), not
    # evaluations, checkpoint saves or restoring after a NaN: what a user's throughput is
    timed_seconds: float = 0.0
    input_wait_seconds: float = 0.0  # time the timed loops were blocked in next(iterator)
    input_handover_seconds: float = 0.0  # time from asking for a batch to having it (wait + slicing a block)
    best_step: Optional[int] = None  # the evaluation with the best main validation metric so far
    best_metrics: Optional[dict] = None  # … and its validation metrics
    kept_step: Optional[int] = None  # the step whose weights were tested (and are exported): --keep
    test_metrics: Optional[dict] = None  # the test split, read once at the end on the kept weights
    stopped_early: bool = False
    stopped_by_signal: str = ""   # "SIGTERM" / "SIGINT" when interrupted
    nan_restores: list = dataclasses.field(default_factory=list)  # steps at which a NaN loss was restored
    time_to_target: float = None  # wall seconds from start until the eval main metric first reached the target
    step_to_target: int = None
    # (step at the loop's end, steps, time.perf_counter() at its start, seconds) per loop
    loops: list = dataclasses.field(default_factory=list)
    eval_seconds: float = 0.0     # wall seconds in evaluations between loops (the final one included)
    checkpoint_seconds: float = 0.0  # … and in checkpoint saves

    measured_input_wait: bool = True

    @property
    def input_wait_fraction(self):
        if not self.measured_input_wait or not self.timed_seconds:
            return None
        return self.input_wait_seconds / self.timed_seconds

    @property
    def input_handover_fraction(self):
        if not self.measured_input_wait or not self.timed_seconds:
            return None
        return self.input_handover_seconds / self.timed_seconds

    @property
    def steps_per_second(self):
        return self.timed_steps / self.timed_seconds if self.timed_seconds else None

    def steady_speed(self, after):
        """(median steps/s, seconds) of the timed loops (the first, tracing one, left out) that started at or after
        `after` (a time.perf_counter value: when the run's background work was done), or (None, 0.0): what
        autotune's promise, a median of loops measured with nothing else running, is compared with."""
        loops = [(steps / seconds, seconds) for _, steps, start, seconds in self.loops[1:] if start >= after]
        if not loops:
            return None, 0.0
        return statistics.median(speed for speed, _ in loops), sum(seconds for _, seconds in loops)

    @property
    def loop_speeds(self):
        """(step at the loop's end, steps/s) per loop."""
        return [(step, steps / seconds) for step, steps, _, seconds in self.loops]


def next_loop_size(step, train_steps, boundaries, steps_per_loop, first):
    """Steps for the next trainer.train call: 1 for the first call of a run (time to first step), else
    steps_per_loop, cut at the next multiple of any boundary (eval, checkpoint) and at the end."""
    size = min(1 if first else steps_per_loop, train_steps - step)
    for every in boundaries:
        size = min(size, (step // every + 1) * every - step)
    return size


def loop_sizes(train_steps, eval_every, steps_per_loop, start=0, checkpoint_every=None):
    """The whole schedule from `start`, as a list (for tests and planning)."""
    step, sizes = start, []
    while step < train_steps:
        size = next_loop_size(step, train_steps, (eval_every, checkpoint_every or eval_every), steps_per_loop,
                              first=step == 0)
        sizes.append(size)
        step += size
    return sizes


def _print_eval(step, total, train_values, eval_values):
    shown = "  ".join(f"{name} {value:.4f}" for name, value in eval_values.items())
    newline = "\n" if sys.stdout.isatty() else ""  # step off the live progress bar
    print(f"{newline}step {step}/{total}  train loss {train_values['loss']:.4f}  validation: {shown}", flush=True)


def _record_validation(experiment, manager, outcome, step):
    """After an evaluation at `step`: a new best main validation metric becomes the best (kept on disk with
    --keep=best, so a resumed run knows it too)."""
    task = experiment.task
    value = outcome.eval_metrics.get(task.main_metric)
    best = None if outcome.best_metrics is None else outcome.best_metrics.get(task.main_metric)
    # A tie of the main metric (accuracy moves in steps of 1/validation examples) goes to the lower loss.
    tie_break = value == best and outcome.eval_metrics.get("loss", 0.0) < outcome.best_metrics.get("loss", 0.0)
    if value is None or (best is not None and not _better(value, best, task.main_metric_mode) and not tie_break):
        return
    outcome.best_step, outcome.best_metrics = step, dict(outcome.eval_metrics)
    if experiment.config.keep == "best":
        manager.save_best(step, outcome.best_metrics)


def _better(value, than, mode):
    return value > than if mode == "max" else value < than


def finish(experiment, trainer, manager, outcome, run_log):
    """The end of a run that was not interrupted: the kept weights (--keep=best: the best evaluation's, else the
    last step's) in the model, then the test split read once on them."""
    outcome.kept_step = outcome.steps
    if experiment.config.keep == "best" and outcome.best_step is not None and outcome.best_step != outcome.steps:
        manager.restore_best()
        trainer.reload_state()  # the JAX engine keeps its own copy of the variables
        outcome.kept_step = outcome.best_step
    test_data, test_steps = experiment.make_test_data()
    outcome.test_metrics = trainer.evaluate(test_data, test_steps)
    run_log.log(outcome.kept_step, "test", outcome.test_metrics)


def _callbacks(experiment, callbacks):
    config = experiment.config
    callbacks = list(callbacks)
    if config.early_stopping_patience:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=f"val_{experiment.task.main_metric}", patience=config.early_stopping_patience,
            mode=experiment.task.main_metric_mode))
    return keras.callbacks.CallbackList(callbacks, model=experiment.model)


class _StopSignals:
    """Records SIGTERM/SIGINT instead of dying mid-loop; the previous handlers come back on exit."""

    def __init__(self):
        self.received = ""

    def __enter__(self):
        self._previous = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. a notebook worker): keep the defaults
                pass
        return self

    def _handle(self, signum, frame):
        del frame
        self.received = signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _handle_nan(experiment, trainer, manager, outcome, step):
    """NaN/Inf loss at `step`: restore the last good checkpoint with half the learning rate, or raise."""
    config, optimizer = experiment.config, experiment.optimizer
    last = manager.latest_checkpoint
    where = f"last good checkpoint: {last}" if last else "no checkpoint was written yet"
    can_restore = config.on_nan == "restore" and last and len(outcome.nan_restores) < config.max_nan_retries \
        and config.lr_schedule == "constant"
    if not can_restore:
        hint = "" if config.on_nan == "restore" else "; try --on_nan=restore or a lower --learning_rate"
        raise NanLossError(f"loss became NaN/Inf in the loop ending at step {step}; {where}{hint}")
    manager.restore(last)
    rate = float(keras.ops.convert_to_numpy(optimizer.learning_rate)) / 2
    optimizer.learning_rate.assign(rate)
    trainer.reload_state()  # the JAX engine keeps its own copy of the variables
    outcome.nan_restores.append(step)
    print(f"step {step}: loss NaN/Inf; restored {last}, learning rate halved to {rate:g}", flush=True)
    return checkpoints.batches_done(optimizer)


class _RanLoop:
    """A loop of a trainer without `start` (tfapp.loop.Trainer): run at once; `result()` returns its values."""

    def __init__(self, trainer, iterator, size):
        self._values = trainer.train(iterator, size)
        self.input_wait, self.input_handover = trainer.last_input_wait, trainer.last_input_handover

    def result(self):
        return self._values


def _watches_batches(callback_list):
    """Whether a callback acts after each loop (it may read the state or stop the run there)."""
    base = keras.callbacks.Callback
    return any(type(callback).on_train_batch_end is not base.on_train_batch_end or
               type(callback).on_batch_end is not base.on_batch_end for callback in callback_list.callbacks)


def _reached(value, target, mode):
    return value >= target if mode == "max" else value <= target


def run_loops(experiment, trainer, steps_per_loop, run_log, write_dir, start_time, callbacks=(),
              after_first_loop=None):
    """Runs the schedule of loops from the optimizer's step; returns an Outcome. `steps_per_loop`: an int, or an
    object whose `size` is the loop size now and whose `observe(steps, seconds)` hears each timed loop
    (autotune.LoopSizeFromSpeed). Logs rows into `run_log`:
    per loop the train loss/metrics and learning_rate; steps_per_second goes to TensorBoard only (and into
    `Outcome.loop_speeds`), so metrics.csv stays identical between deterministic runs. `after_first_loop()` is
    called once the first loop (tracing, compiling) is done: background work started then does not compete with
    the trace for the Python interpreter."""
    config, optimizer = experiment.config, experiment.optimizer
    callback_list = _callbacks(experiment, callbacks)
    experiment.model.stop_training = False
    manager = experiment.checkpoint_manager(write_dir, trainer)
    step = checkpoints.batches_done(optimizer)
    outcome, epoch = Outcome(start_step=step, steps=step, measured_input_wait=trainer.measure_input_wait), 0
    # A live bar on a terminal; in logs (CI, files) one line at the end plus the eval lines.
    progress = keras.utils.Progbar(config.train_steps, unit_name="step", verbose=1 if sys.stdout.isatty() else 2,
                                   stateful_metrics=["loss", *(m.name for m in trainer.train_metrics)])
    iterator = iter(experiment.train_data)
    trainer.reset_input()
    saved_best = manager.best() if experiment.resumed_from else None  # (step, validation metrics) of the best
    if saved_best:
        outcome.best_step, outcome.best_metrics = saved_best
    boundaries = (config.eval_every, config.checkpoint_every)
    callback_list.on_train_begin()
    callback_list.on_epoch_begin(epoch)
    # A trainer with `start` (the JAX engine) dispatches a loop without waiting for it: the next loop is
    # dispatched before this one's results are read, so the devices run it while the host logs, draws progress
    # and fetches input. Only where nothing between the loops reads the state: no evaluation or checkpoint at
    # the boundary, no signal or stop request pending, no callback watching batches (it may stop the run).
    ahead_allowed = hasattr(trainer, "start") and not _watches_batches(callback_list)
    pending, last_result_at = None, 0.0
    timed_from = None  # when the host's work toward the next loop began: the last result, past evaluations, saves

    def launch(at):
        # One step first on a fresh run (time to first step); a resumed run keeps the loop grid of the original.
        size = next_loop_size(at, config.train_steps, boundaries, getattr(steps_per_loop, "size", steps_per_loop),
                              first=at == 0)
        dispatched_at = time.perf_counter()
        loop = trainer.start(iterator, size) if hasattr(trainer, "start") else _RanLoop(trainer, iterator, size)
        return size, dispatched_at, loop

    with _StopSignals() as signals:
        while step < config.train_steps:
            size, dispatched_at, loop = pending or launch(step)
            end = step + size
            pending = launch(end) if ahead_allowed and end < config.train_steps and end % config.eval_every and \
                end % config.checkpoint_every and not signals.received and not experiment.model.stop_training \
                else None
            train_values = loop.result()
            result_at = time.perf_counter()
            # The loop ran from its dispatch, or, dispatched ahead, from the end of the loop before it.
            loop_start = max(dispatched_at, last_result_at)
            elapsed, last_result_at = result_at - loop_start, result_at
            if not math.isfinite(train_values["loss"]):
                pending = None  # a loop dispatched ahead trained from the NaN state: dropped with it
                step = _handle_nan(experiment, trainer, manager, outcome, end)
                iterator = iter(experiment.restart_train_data(step))
                trainer.reset_input()
                timed_from = None
                continue
            paused = 0.0  # seconds of this iteration not counted as training: evaluation, saving, first-loop setup
            if "learning_rate" not in train_values:
                train_values["learning_rate"] = trainer.learning_rate()
            speed = {"steps_per_second": size / elapsed}
            if step == outcome.start_step:
                outcome.time_to_first_step, outcome.compile_seconds = time.time() - start_time, elapsed
                if after_first_loop:
                    setup_start = time.perf_counter()
                    after_first_loop()
                    paused += time.perf_counter() - setup_start
            else:
                # The loop and the host's work since the last one (`elapsed`, the loop alone, is what autotune
                # measured and what judges its choice).
                wall = result_at - (loop_start if timed_from is None else min(timed_from, loop_start))
                outcome.timed_steps, outcome.timed_seconds = outcome.timed_steps + size, outcome.timed_seconds + wall
                outcome.input_wait_seconds += loop.input_wait
                outcome.input_handover_seconds += loop.input_handover
                if hasattr(steps_per_loop, "observe"):  # autotune.LoopSizeFromSpeed: the next loops' size
                    steps_per_loop.observe(size, elapsed)
            step = end
            outcome.steps = step
            outcome.loops.append((step, size, loop_start, elapsed))
            run_log.log(step, "train", train_values)
            run_log.log(step, "train", speed, csv_too=False)
            progress.update(step, values=[(k, v) for k, v in train_values.items() if k != "learning_rate"],
                            finalize=False)
            callback_list.on_train_batch_end(step, logs=train_values)
            if step % config.eval_every == 0 or step == config.train_steps:
                eval_start = time.perf_counter()
                outcome.eval_metrics = trainer.evaluate(experiment.validation_data(), experiment.eval_steps)
                outcome.eval_seconds += time.perf_counter() - eval_start
                run_log.log(step, "validation", outcome.eval_metrics)
                _record_validation(experiment, manager, outcome, step)
                main = outcome.eval_metrics.get(experiment.task.main_metric)
                if config.target_metric is not None and outcome.time_to_target is None and main is not None \
                        and _reached(main, config.target_metric, experiment.task.main_metric_mode):
                    outcome.time_to_target, outcome.step_to_target = time.time() - start_time, step
                _print_eval(step, config.train_steps, train_values, outcome.eval_metrics)
                callback_list.on_epoch_end(epoch, logs={**train_values,
                                                        **{f"val_{k}": v for k, v in outcome.eval_metrics.items()}})
                epoch += 1
                callback_list.on_epoch_begin(epoch)
                paused += time.perf_counter() - eval_start  # the evaluation and what follows it (the best kept)
            # A signal or stop request that came while a loop ran ahead is served at that loop's end: the state
            # is already past this step.
            settled = pending is None
            if step % config.checkpoint_every == 0 or step == config.train_steps or \
                    (settled and (signals.received or experiment.model.stop_training)):
                save_start = time.perf_counter()
                run_log.flush()  # rows first: a kill between the two leaves extra rows, which resuming trims
                manager.save(checkpoint_number=step)
                save_seconds = time.perf_counter() - save_start
                outcome.checkpoint_seconds += save_seconds
                paused += save_seconds
            timed_from = last_result_at + paused
            if settled and signals.received:
                outcome.stopped_by_signal = signals.received
                break
            if settled and experiment.model.stop_training:
                outcome.stopped_early = step < config.train_steps
                break
    trainer.sync_to_model()  # the model's variables hold the trained weights (export, whole-test-set metrics)
    if not outcome.eval_metrics and not outcome.stopped_by_signal:
        # Resumed at the last step (or no evaluation fell inside this session): the last validation still counts.
        outcome.eval_metrics = trainer.evaluate(experiment.validation_data(), experiment.eval_steps)
        if outcome.best_step is None:
            _record_validation(experiment, manager, outcome, step)
    progress.update(step, finalize=True)
    callback_list.on_train_end()
    if not outcome.stopped_by_signal:
        finish(experiment, trainer, manager, outcome, run_log)
    return outcome
