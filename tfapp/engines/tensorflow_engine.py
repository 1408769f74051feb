"""The TensorFlow engine (`--backend=tensorflow`, the default): tf.distribute strategies, `tfapp.loop.Trainer`'s
multi-step loop, XLA chosen by measuring (tfapp.autotune), FLOPs from TensorFlow's profiler, the SavedModel
written by Keras in the training process. Implements `tfapp.engines.Engine`.

    tfapp-train --task=digits --model=cnn --strategy=mirrored --num_cpu_devices=2

`prepare(config)` builds the run's `tfapp.experiment.Experiment` (strategy, data, model, optimizer; a checkpoint in
model_dir resumed) and writes nothing; `tfapp.training.train` then drives it.
"""
import dataclasses
import functools
import sys

import keras
import tensorflow as tf

import pipelines
import strategies
from tfapp import autotune, autotune_cache, checkpoints, export, flops, loop, precision, report
from tfapp import tasks
from tfapp.config import ConfigError
from tfapp.experiment import (Experiment, augmenter, build_model, build_optimizer, choose_precision, load_source,
                              resolve_run_dir, timed)

NAME = "tensorflow"


def check_jit_compile(choice, strategy):
    """Rejects --jit_compile=true|block where XLA cannot run (one replica per logical CPU device)."""
    if choice in ("true", "block") and autotune.jit_candidates("auto", strategy) == [False]:
        raise ConfigError(f"--jit_compile={choice}: XLA cannot run one replica per logical CPU device (variables "
                          "live on another CPU device than the compiled step); use --jit_compile=false|auto or one "
                          "device")


def prepare(config):
    """Builds strategy, data and model for a resolved Config (resuming from model_dir's checkpoint when there is
    one); raises ValueError subclasses on bad input and writes nothing."""
    task = tasks.get_task(config.task).for_model(config.model)
    startup = {}
    with timed(startup, "strategy_s"):
        strategy = strategies.get_strategy(config.strategy, tpu=config.tpu, num_cpu_devices=config.num_cpu_devices)
    is_chief = strategies.is_chief(strategy)
    model_dir, resuming = resolve_run_dir(config)
    config = dataclasses.replace(config, model_dir=model_dir)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    if config.batch_size % strategy.num_replicas_in_sync:
        raise ConfigError(f"--batch_size={config.batch_size} (global) is not divisible by "
                          f"{strategy.num_replicas_in_sync} replicas")
    check_jit_compile(config.jit_compile, strategy)
    with timed(startup, "data_load_s"):
        source = load_source(config, task)
    keras.utils.set_random_seed(config.seed)
    preprocess, augment = task.preprocessor(source.spec), augmenter(config, task, source)

    # One replica on in-memory arrays: the loop takes a block of batches per next() (the per-step hand-over is
    # what limits tiny models); with several replicas each step takes its per-replica batches as usual.
    block = None
    if source.arrays and task.vectorized_preprocess and strategy.num_replicas_in_sync == 1:
        block = pipelines.block_batches(source.arrays["train"], config.batch_size)
        block = block if block > 1 else None

    def make_train_data(skip_steps):
        return strategy.distribute_datasets_from_function(lambda context: pipelines.train_dataset(
            source.splits["train"], preprocess, config.batch_size, config.seed, context, cache=config.cache,
            vectorized=task.vectorized_preprocess, arrays=(source.arrays or {}).get("train"), skip_steps=skip_steps,
            blocks=bool(block), augment=augment))

    def make_eval_data(split):
        """(distributed repeating dataset of the split's (features, label, weight) batches, batches per pass, input
        pipelines)."""
        contexts = []  # the input context tf.distribute hands out: how many input pipelines share the split

        def make(context):
            contexts.append(context)
            return pipelines.eval_dataset(source.splits[split], preprocess, config.batch_size,
                                          source.num_examples[split], context, vectorized=task.vectorized_preprocess,
                                          repeat=True)

        data = strategy.distribute_datasets_from_function(make)
        workers = contexts[0].num_input_pipelines
        return data, pipelines.eval_steps(source.num_examples[split], config.batch_size, workers), workers

    eval_data, eval_steps, input_pipelines = make_eval_data("validation")

    def candidate_trainer(candidate):  # --mixed_precision=auto: a model in one precision, as the run would train it
        with strategy.scope():
            model = build_model(candidate, task, source.spec)
            optimizer = build_optimizer(candidate, model, task)
            optimizer.build(model.trainable_variables)
        jit = autotune.jit_candidates(config.jit_compile, strategy, blocks=bool(block),
                                      xla_known_best=config.model in task.xla_models)[0]
        return loop.Trainer(strategy, model, optimizer, task.loss(), task.metrics, config.batch_size, jit_compile=jit,
                            block=block)

    found = report.accelerator(strategy)
    platform = found[0].lower() if found else "cpu"
    capability = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0]).get(
        "compute_capability") if platform == "gpu" else None
    with timed(startup, "precision_s"):
        config, precision_record = choose_precision(
            config, "tensorflow", report.device_description(strategy), precision.native("tensorflow", platform,
                                                                                         capability),
            candidate_trainer, make_train_data, resuming, platform, input_pipelines,
            strategy.num_replicas_in_sync)
    with timed(startup, "model_build_s"), strategy.scope():
        model = build_model(config, task, source.spec)
        optimizer = build_optimizer(config, model, task)
        optimizer.build(model.trainable_variables)
    resumed_from = checkpoints.latest(model_dir) if resuming else None
    if resumed_from:
        checkpoints.checkpoint(model, optimizer).restore(resumed_from).assert_existing_objects_matched()
    if is_chief:
        checkpoints.check_writable(model_dir)
    start_step = checkpoints.batches_done(optimizer)
    return Experiment(config=config, task=task, strategy=strategy, source=source, model=model, optimizer=optimizer,
                      train_data=make_train_data(start_step), eval_data=eval_data, is_chief=is_chief,
                      make_train_data=make_train_data, resumed_from=resumed_from, block=block, startup=startup,
                      eval_steps=eval_steps, engine=NAME, precision=precision_record,
                      make_test_data=lambda: make_eval_data("test")[:2])


def choose_trainer(experiment, on_traced=None):
    """(loop.Trainer with the configured, cached or measured XLA setting, its steps per loop, the autotune
    record for report.json: "source" is "fixed", "cache" or "measured"). `on_traced(trainer)`: called once the
    run's TensorFlow trainer has traced its train loop, before XLA compiles it, when the setting is known
    without measuring several (see loop.Trainer.on_traced)."""
    config, strategy, task = experiment.config, experiment.strategy, experiment.task

    def make_trainer(jit, final=False):
        trainer = loop.Trainer(strategy, experiment.model, experiment.optimizer, task.loss(), task.metrics,
                               config.batch_size, jit_compile=jit, measure_input_wait=not config.deterministic,
                               block=experiment.block)
        if final and on_traced:
            trainer.on_traced = functools.partial(on_traced, trainer)
        return trainer

    jits = autotune.jit_candidates(config.jit_compile, strategy, blocks=bool(experiment.block),
                                   xla_known_best=config.model in task.xla_models)
    fixed_spl = None if config.steps_per_loop == "auto" else int(config.steps_per_loop)
    if len(jits) == 1 and fixed_spl:
        return make_trainer(jits[0], final=True), fixed_spl, {"source": "fixed", "reason": "set by flags"}
    if config.deterministic:
        # Measuring runs a time-dependent number of steps: fixed settings keep runs identical. XLA and the plain
        # step round differently: keep one numeric path.
        jit = jits[0] if config.jit_compile != "auto" else False
        return make_trainer(jit, final=True), fixed_spl or 16, {
            "source": "fixed", "reason": "--deterministic: no XLA unless --jit_compile says so, 16 steps per loop "
                                         "unless set"}
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        # Workers time differently and must not choose differently: fixed, stated choice instead of measuring.
        return make_trainer(False, final=True), fixed_spl or 16, {"source": "fixed", "reason": "multi-worker: "
                                                                  "jit_compile=False, 16 steps per loop unless set"}
    start_step = checkpoints.batches_done(experiment.optimizer)
    planned = config.train_steps - start_step
    cache_key = autotune_cache.key(experiment, report.device_description(strategy), jits, fixed_spl)
    entry = autotune_cache.lookup(cache_key, planned, config.autotune_seconds) if config.autotune == "cache" \
        else None
    if entry:
        choice = entry["choice"]
        return make_trainer(choice["jit_compile"], final=True), int(choice["steps_per_loop"]), {
            "source": "cache", "cache_file": autotune_cache.file_for(cache_key), "choice": choice,
            "steps_per_second": entry["steps_per_second"], "measured": entry["written"]}
    # Measuring reads a dataset of its own: iterators of one dataset share its shuffle state, so reading ahead
    # here would change the run's data order.
    result = autotune.autotune(functools.partial(make_trainer, final=len(jits) == 1),
                               iter(experiment.make_train_data(start_step)), jits, fixed_spl,
                               budget_seconds=config.autotune_seconds, planned_steps=planned,
                               variables=lambda: experiment.model.variables + experiment.optimizer.variables)
    autotune_cache.store(cache_key, result)
    return result.trainer, result.steps_per_loop, {"source": "measured", "cache_file": autotune_cache.file_for(
        cache_key), **result.to_json()}


def _flops_per_step(experiment):
    """Profiler FLOPs of forward + backward on one replica's batch, times replicas (see tfapp.flops)."""
    config, task, strategy = experiment.config, experiment.task, experiment.strategy
    replicas = strategy.num_replicas_in_sync
    context = tf.distribute.InputContext(num_replicas_in_sync=replicas)
    features_spec, labels_spec, *_ = pipelines.train_dataset(
        experiment.source.splits["train"], task.preprocessor(experiment.source.spec), config.batch_size, config.seed,
        context, vectorized=task.vectorized_preprocess).element_spec
    return flops.cached_step_flops(experiment.model, task.loss(), features_spec, labels_spec, replicas)


def step_flops(experiment, trainer):
    """{"flops_per_step", "flops_method"} of the run's model and strategy."""
    return {"flops_per_step": _flops_per_step(experiment),
            "flops_method": "tf.compat.v1.profiler float_operation of the forward+backward graph x replicas "
                            "(optimizer not counted)"}


def device_peak(experiment):
    """{"peak", "peak_method"} of the strategy's devices (see tfapp.flops.device_peak)."""
    return report.peak_of_devices(experiment, flops.device_peak)


def export_preparer(experiment):
    """Builds a copy of the model and traces the task's serving signatures (tfapp.export.PreparedExport), in the
    background while training; every worker takes part (a multi-worker save is collective)."""
    config, task = experiment.config, experiment.task
    if not config.export:
        return None
    return functools.partial(export.PreparedExport, lambda: task.model_builder(config.model)(
        config, experiment.source.spec), task.serving, experiment.source.spec)


def write_export(experiment, prepared, write_dir):
    """(SavedModel path, .tflite path, "not written: why" or None): the trained weights written through the
    prepared signatures."""
    if prepared is None:
        return None, None
    export_path = prepared.result().write(experiment.model, report.join(write_dir, "export"))
    if not experiment.config.tflite:
        return export_path, None
    try:
        return export_path, export.export_tflite(export_path)
    except export.TFLiteError as error:  # the run and its SavedModel stand; say why there is no .tflite
        print(f"tfapp-train: warning: {error}", file=sys.stderr)
        return export_path, f"not written: {error}"


def report_extras(experiment):
    """report.json's engine keys: no JAX here."""
    return {"jax_version": None}
