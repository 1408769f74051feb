"""One training run, end to end: config -> strategy -> pipeline -> model -> loop -> report and export.

    python -c "from tfapp import config, run; run.run(config.Config(task='digits').resolved(smoke=True))"

`prepare(config)` does everything that can fail on bad input (strategy, data, model) and writes nothing;
`train(experiment)` then creates the model_dir and writes checkpoints, metrics.csv, TensorBoard events,
curves.png, report.json and the SavedModel. `run` is the two in a row; the CLI and notebooks call it.
On multi-worker runs only the chief writes into model_dir; the other workers write to a temporary directory.
"""
import concurrent.futures
import dataclasses
import functools
import shutil
import sys
import tempfile
import time

import keras
import tensorflow as tf

import pipelines
import strategies
from tfapp import autotune, autotune_cache, checkpoints, export, flops, host_loop, loop, plots, precision, report
from tfapp import tasks
from tfapp.config import ConfigError
# The pieces both engines build a run from (tfapp.experiment); kept importable from here, where they used to live.
from tfapp.experiment import (Experiment, augmenter, build_model, build_optimizer, choose_precision,  # noqa: F401
                              learning_rate_schedule, load_source, resolve_run_dir, timed)


def check_jit_compile(choice, strategy):
    """Rejects --jit_compile=true|block where XLA cannot run (one replica per logical CPU device)."""
    if choice in ("true", "block") and autotune.jit_candidates("auto", strategy) == [False]:
        raise ConfigError(f"--jit_compile={choice}: XLA cannot run one replica per logical CPU device (variables "
                          "live on another CPU device than the compiled step); use --jit_compile=false|auto or one "
                          "device")


def prepare(config):
    """Builds strategy, data and model for a resolved Config (resuming from model_dir's checkpoint when there is
    one); raises ValueError subclasses on bad input and writes nothing."""
    if config.backend == "jax":
        from tfapp import jax_run
        return jax_run.prepare(config)
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
    return Experiment(config, task, strategy, source, model, optimizer, make_train_data(start_step), eval_data,
                      is_chief, make_train_data, resumed_from, block, startup, eval_steps, precision=precision_record,
                      make_test_data=lambda: make_eval_data("test")[:2])


def choose_trainer(experiment, on_traced=None):
    """(loop.Trainer with the configured, cached or measured XLA setting, its steps per loop, the autotune
    record for report.json: "source" is "fixed", "cache" or "measured"). `on_traced(trainer)`: called once the
    run's TensorFlow trainer has traced its train loop, before XLA compiles it, when the setting is known
    without measuring several (see loop.Trainer.on_traced)."""
    config, strategy, task = experiment.config, experiment.strategy, experiment.task
    if experiment.engine == "jax":  # every step compiled: nothing to measure (see jax_run.choose_trainer)
        from tfapp import jax_run
        return jax_run.choose_trainer(experiment)

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


def extra_metrics(experiment, outcome):
    """Adds the task's whole-test-set metrics (entity F1, recall@k) of the kept weights to the test metrics, and
    its baselines (at the end: the test split is read after training only)."""
    task, source, config = experiment.task, experiment.source, experiment.config
    batches = pipelines.eval_dataset(source.splits["test"], task.preprocessor(source.spec), config.batch_size,
                                     source.num_examples["test"], vectorized=task.vectorized_preprocess) \
        if task.evaluate_extra else None  # only a whole-test-set metric reads them
    extra, outcome.baselines = task.whole_test_set_figures(experiment.model, source, config, batches)
    if outcome.test_metrics is not None:
        outcome.test_metrics.update(extra)


def step_flops(experiment, trainer):
    """{"flops_per_step", "flops_method"} on either engine (for a background thread: a count, no timing)."""
    if experiment.engine == "jax":
        from tfapp import jax_run
        return jax_run.step_flops(experiment, trainer)
    return report.step_flops(experiment)


def device_peak(experiment):
    """{"peak", "peak_method"} on either engine: published, cached, or measured now (with nothing else running,
    once per machine and dtype: measured beside the training loops it read 10-50% low on a 2-core CPU)."""
    if experiment.engine == "jax":
        from tfapp import jax_run
        return jax_run.device_peak(experiment)
    return report.peak_of_devices(experiment, flops.device_peak)


def train(experiment, start_time=None, callbacks=()):
    """Trains, evaluates, records and exports; returns the report dict (also written to report.json).

    `callbacks`: Keras callbacks (EarlyStopping, user callbacks); see host_loop for which hooks are called.
    """
    start_time = start_time or time.time()
    config, task = experiment.config, experiment.task
    write_dir = config.model_dir if experiment.is_chief else tempfile.mkdtemp(prefix="tfapp-worker-")
    tf.io.gfile.makedirs(write_dir)
    checkpoints.write_config(write_dir, dataclasses.asdict(config))
    startup = experiment.startup
    # Work the end of the run needs, done in the shadow of training once the step is traced (XLA compiles and
    # compiled loops release the GIL): the eval function's trace, FLOPs, the export's model copy and traced
    # signatures, matplotlib's set-up. It starts while XLA compiles the step when the setting is known up front
    # (one core is left idle then: the language model's first step came ~2 s sooner, docs/tasks.md), else
    # after the first loop.
    shadow = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="tfapp-shadow")
    futures = {}

    def start_shadow_work(trainer):
        if "flops" in futures:
            return
        if hasattr(trainer, "prepare_evaluate"):  # the first evaluation comes soonest (if it fails, evaluate traces)
            shadow.submit(trainer.prepare_evaluate, experiment.eval_data, experiment.eval_steps)
        futures["flops"] = shadow.submit(step_flops, experiment, trainer)
        if config.export and experiment.engine == "tensorflow":
            futures["export"] = shadow.submit(
                export.PreparedExport, lambda: task.model_builder(config.model)(config, experiment.source.spec),
                task.serving, experiment.source.spec)
        elif config.export and experiment.is_chief:
            from tfapp import jax_run
            if jax_run.exports_in_process(experiment):
                futures["export"] = shadow.submit(jax_run.prepare_export, experiment)
        shadow.submit(plots.warm_up)
        futures["done"] = shadow.submit(lambda: futures.setdefault("done_at", time.perf_counter()))  # loops after
        # it run alone

    with timed(startup, "autotune_s"):
        trainer, steps_per_loop, autotune_record = choose_trainer(experiment, on_traced=start_shadow_work)
    start_step = checkpoints.batches_done(experiment.optimizer)
    run_log = report.RunLog(write_dir, keep_until=start_step if experiment.resumed_from else None)
    run_log.log_hparams(dataclasses.asdict(config))
    try:
        try:
            outcome = host_loop.run_loops(experiment, trainer, steps_per_loop, run_log, write_dir, start_time,
                                          callbacks, after_first_loop=lambda: start_shadow_work(trainer))
            if hasattr(steps_per_loop, "size"):  # chosen from the run's own loops: the size they ended with
                steps_per_loop = autotune_record["choice"]["steps_per_loop"] = steps_per_loop.size
            if "flops" not in futures:  # no loop ran (resumed at the last step)
                start_shadow_work(trainer)
            futures["done"].result()  # the background work is over: a peak measured now has the machine alone
            flop_figures = {**futures["flops"].result(), **device_peak(experiment)}
            for step, speed in outcome.loop_speeds:  # per-loop MFU into TensorBoard
                run_log.log(step, "train", {"mfu": flop_figures["flops_per_step"] * speed / flop_figures["peak"]},
                            csv_too=False)
        finally:
            run_log.close()
        startup["first_step_s"] = outcome.compile_seconds  # tracing (and XLA compiling) the step, plus its run
        startup["time_to_first_step_s"] = outcome.time_to_first_step
        if autotune_record.get("source") in ("cache", "measured"):  # a choice slower in use than measured: stale
            # Judged on the loops that ran without the background work above, as the measurement ran.
            speed, seconds = outcome.steady_speed(after=futures.get("done_at", float("inf")))
            autotune_record["stale"] = autotune_cache.check_speed(
                autotune_record["cache_file"], autotune_record["steps_per_second"], speed, seconds)
        if outcome.stopped_by_signal:
            return {"status": "interrupted", "signal": outcome.stopped_by_signal, "steps": outcome.steps,
                    "model_dir": config.model_dir, "task": task.name}
        finish_start = time.perf_counter()
        # curves.png is drawn in a background thread while the export is written
        curves = plots.start_curves(run_log.series, task.main_metric, report.join(write_dir, "curves.png"),
                                    title=f"{task.name} / {config.model} — {strategies.describe(experiment.strategy)}",
                                    x_axis=task.x_axis(experiment.source.spec, config) if task.x_axis else
                                    ("optimizer step", 1))
        extra_metrics(experiment, outcome)
        export_path = tflite = None
        if config.export and experiment.engine == "jax":
            from tfapp import jax_run
            export_path, tflite = jax_run.export(experiment, futures.get("export"), write_dir) \
                if experiment.is_chief else (None, None)
        elif config.export:
            export_path = futures["export"].result().write(experiment.model, report.join(write_dir, "export"))
            if config.tflite:
                try:
                    tflite = export.export_tflite(export_path)
                except export.TFLiteError as error:  # the run and its SavedModel stand; say why there's no .tflite
                    print(f"tfapp-train: warning: {error}", file=sys.stderr)
                    tflite = f"not written: {error}"
        plots.join_curves(curves)
        finish_seconds = time.perf_counter() - finish_start  # extra metrics, export, curves.png
    finally:
        shadow.shutdown(wait=False, cancel_futures=True)
    content = report.build_report(experiment, trainer, outcome, steps_per_loop, autotune_record, export_path,
                                  wall_time=time.time() - start_time, flops=flop_figures)
    content["tflite"] = tflite  # path of model.tflite, "not written: why", or None without --tflite
    content["startup"] = startup  # seconds: where the time to the first step went
    content["precision"] = experiment.precision  # --mixed_precision=auto: the choice and why (else None)
    content["phases_s"]["finish"] = finish_seconds
    if experiment.engine == "jax":
        from tfapp import jax_run
        content["model_parallel"] = jax_run.sharding_report(experiment)
        table = experiment.train_table  # training rows kept on the devices (bytes per device), or None
        content["rows_on_devices_bytes"] = sum(leaf.nbytes for leaf in tf.nest.flatten(table)) if table else None
    report.write_json(report.join(write_dir, "report.json"), content)
    if not experiment.is_chief:
        shutil.rmtree(write_dir, ignore_errors=True)
    return content


def run(config, start_time=None, callbacks=()):
    """prepare + train for a resolved Config; returns the report dict."""
    start_time = start_time or time.time()
    return train(prepare(config), start_time=start_time, callbacks=callbacks)
