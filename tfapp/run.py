"""One training run, end to end: config -> strategy -> pipeline -> model -> loop -> report and export.

    python -c "from tfapp import config, run; run.run(config.Config(task='digits').resolved(smoke=True))"

`prepare(config)` does everything that can fail on bad input (strategy, data, model) and writes nothing;
`train(experiment)` then creates the model_dir and writes checkpoints, metrics.csv, TensorBoard events,
curves.png, report.json and the SavedModel. `run` is the two in a row; the CLI and notebooks call it.
"""
import dataclasses
import sys
import time
from typing import Any

import keras
import tensorflow as tf

import pipelines
import strategies
from tfapp import checkpoints, export, loop, plots, report, tasks
from tfapp.config import ConfigError


@dataclasses.dataclass
class Experiment:
    """Everything built from a Config before the first file is written."""
    config: Any
    task: Any
    strategy: Any
    source: Any
    model: Any
    optimizer: Any
    trainer: Any
    jit_compile: bool
    train_data: Any
    eval_data: Any


def resolve_jit_compile(choice, strategy):
    """--jit_compile auto|true|false -> bool. auto: XLA on TPU (required there), off elsewhere."""
    is_tpu = isinstance(strategy, tf.distribute.TPUStrategy)
    logical_cpus = strategy.num_replicas_in_sync > 1 and not tf.config.list_logical_devices("GPU") and not is_tpu
    if choice == "true" and logical_cpus:
        raise ConfigError("--jit_compile=true: XLA cannot run one replica per logical CPU device (variables live on "
                          "another CPU device than the compiled step); use --jit_compile=false or one device")
    if choice == "auto":
        return is_tpu
    return choice == "true"


def _check_model_dir(model_dir):
    if tf.io.gfile.exists(model_dir) and tf.io.gfile.listdir(model_dir):
        raise ConfigError(f"--model_dir={model_dir}: exists and is not empty; choose a new directory")


def prepare(config):
    """Builds strategy, data, model and loop for a resolved Config; raises ValueError subclasses on bad input."""
    task = tasks.get_task(config.task)
    _check_model_dir(config.model_dir)
    strategy = strategies.get_strategy(config.strategy, tpu=config.tpu, num_cpu_devices=config.num_cpu_devices)
    if config.batch_size % strategy.num_replicas_in_sync:
        raise ConfigError(f"--batch_size={config.batch_size} (global) is not divisible by "
                          f"{strategy.num_replicas_in_sync} replicas")
    jit_compile = resolve_jit_compile(config.jit_compile, strategy)
    source = pipelines.load(config.data, test_fraction=config.test_fraction, seed=config.seed,
                            data_dir=config.data_dir)
    keras.utils.set_random_seed(config.seed)
    train_data = strategy.distribute_datasets_from_function(lambda context: pipelines.train_dataset(
        source.splits["train"], task.preprocess, config.batch_size, config.seed, context))
    eval_data = strategy.distribute_datasets_from_function(lambda context: pipelines.eval_dataset(
        source.splits["test"], task.preprocess, config.batch_size, source.num_examples["test"], context))
    with strategy.scope():
        model = task.models[config.model](config, source.spec)
        optimizer = keras.optimizers.Adam(config.learning_rate)
    trainer = loop.Trainer(strategy, model, optimizer, task.loss(), task.metrics, config.batch_size, jit_compile)
    return Experiment(config, task, strategy, source, model, optimizer, trainer, jit_compile, train_data, eval_data)


def _loop_sizes(config):
    """Steps per trainer.train call: 1 first (time to first step), then steps_per_loop, cut at eval boundaries."""
    step, sizes = 0, []
    while step < config.train_steps:
        next_eval = (step // config.eval_every + 1) * config.eval_every
        size = 1 if step == 0 else min(config.steps_per_loop, next_eval - step)
        size = min(size, config.train_steps - step)
        sizes.append(size)
        step += size
    return sizes


def _print_eval(step, total, values):
    shown = "  ".join(f"{name} {value:.4f}" for name, value in values.items())
    newline = "\n" if sys.stdout.isatty() else ""  # step off the live progress bar
    print(f"{newline}step {step}/{total}  eval: {shown}", flush=True)


def train(experiment, start_time=None):
    """Trains, evaluates, records and exports; returns the report dict (also written to report.json)."""
    start_time = start_time or time.time()
    config, trainer, task = experiment.config, experiment.trainer, experiment.task
    tf.io.gfile.makedirs(config.model_dir)
    run_log = report.RunLog(config.model_dir)
    manager = checkpoints.manager(config.model_dir, experiment.model, experiment.optimizer)
    # A live bar on a terminal; in logs (CI, files) one line at the end plus the eval lines.
    progress = keras.utils.Progbar(config.train_steps, unit_name="step", verbose=1 if sys.stdout.isatty() else 2)
    iterator = iter(experiment.train_data)
    step, timed_steps, timed_seconds, first_step_time, eval_values = 0, 0, 0.0, None, {}
    for size in _loop_sizes(config):
        loop_start = time.time()
        train_values = trainer.train(iterator, size)
        elapsed = time.time() - loop_start
        step += size
        if first_step_time is None:
            first_step_time, compile_seconds = time.time() - start_time, elapsed
        else:
            timed_steps, timed_seconds = timed_steps + size, timed_seconds + elapsed
        run_log.log(step, "train", train_values)
        progress.update(step, values=list(train_values.items()), finalize=False)
        if step % config.eval_every == 0 or step == config.train_steps:
            eval_values = trainer.evaluate(experiment.eval_data)
            run_log.log(step, "eval", eval_values)
            _print_eval(step, config.train_steps, eval_values)
            manager.save(checkpoint_number=step)
            run_log.flush()
    progress.update(step, finalize=True)
    run_log.close()
    steps_per_second = timed_steps / timed_seconds if timed_seconds else None
    export_path = None
    if config.export:
        export_path = export.export_saved_model(
            experiment.model, lambda: task.models[config.model](config, experiment.source.spec), task.serving,
            report.join(config.model_dir, "export"))
    plots.plot_curves(run_log, task.main_metric, report.join(config.model_dir, "curves.png"),
                      title=f"{task.name} / {config.model} — {strategies.describe(experiment.strategy)}")
    content = {
        "task": task.name,
        "config": dataclasses.asdict(config),
        "final_metrics": eval_values,
        "steps": step,
        "steps_per_second": steps_per_second,
        "examples_per_second": steps_per_second * config.batch_size if steps_per_second else None,
        "time_to_first_step_s": first_step_time,
        "compile_time_s": compile_seconds,
        "wall_time_s": time.time() - start_time,
        "strategy": strategies.describe(experiment.strategy),
        "num_replicas": experiment.strategy.num_replicas_in_sync,
        "jit_compile": experiment.jit_compile,
        "tf_version": tf.__version__,
        "keras_version": keras.__version__,
        "device": report.device_description(experiment.strategy),
        "num_examples": dict(experiment.source.num_examples),
        "export_path": export_path,
    }
    report.write_json(report.join(config.model_dir, "report.json"), content)
    return content


def run(config, start_time=None):
    """prepare + train for a resolved Config; returns the report dict."""
    start_time = start_time or time.time()
    return train(prepare(config), start_time=start_time)
