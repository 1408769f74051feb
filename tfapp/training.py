"""Trains an Experiment on its engine, end to end: the loop, evaluation, checkpoints, report, curves and export.

    python -c "from tfapp import config, run; run.run(config.Config(task='digits').resolved(smoke=True))"

`train(experiment)` creates the model_dir and writes checkpoints, metrics.csv, TensorBoard events, curves.png,
report.json and the SavedModel; the engine that built the experiment (`tfapp.engines`) supplies the trainer, the
FLOPs count, the peak and the export, and nothing here tests which engine it is. On multi-worker runs only the
chief writes into model_dir; the other workers write to a temporary directory. Called by `tfapp.run` (the CLIs,
notebooks) and `tfapp.fit` (tfapp.own_model).
"""
import concurrent.futures
import dataclasses
import shutil
import tempfile
import time

import tensorflow as tf

import pipelines
import strategies
from tfapp import autotune_cache, checkpoints, engines, host_loop, plots, report
from tfapp.experiment import timed


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


def train(experiment, start_time=None, callbacks=()):
    """Trains, evaluates, records and exports; returns the report dict (also written to report.json).

    `callbacks`: Keras callbacks (EarlyStopping, user callbacks); see host_loop for which hooks are called.
    """
    start_time = start_time or time.time()
    config, task = experiment.config, experiment.task
    engine = engines.get(experiment.engine)
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
            shadow.submit(lambda: trainer.prepare_evaluate(experiment.validation_data(), experiment.eval_steps))
        futures["flops"] = shadow.submit(engine.step_flops, experiment, trainer)
        prepare_export = engine.export_preparer(experiment)
        if prepare_export:
            futures["export"] = shadow.submit(prepare_export)
        shadow.submit(plots.warm_up)
        futures["done"] = shadow.submit(lambda: futures.setdefault("done_at", time.perf_counter()))  # loops after
        # it run alone

    with timed(startup, "autotune_s"):
        trainer, steps_per_loop, autotune_record = engine.choose_trainer(experiment, on_traced=start_shadow_work)
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
            flop_figures = {**futures["flops"].result(), **engine.device_peak(experiment)}
            for step, speed in outcome.loop_speeds:  # per-loop MFU into TensorBoard
                run_log.log(step, "train", {"mfu": flop_figures["flops_per_step"] * speed / flop_figures["peak"]},
                            csv_too=False)
        finally:
            run_log.close()
        startup["first_step_s"] = outcome.compile_seconds  # tracing (and XLA compiling) the step, plus its run
        startup["time_to_first_step_s"] = outcome.time_to_first_step
        if getattr(trainer, "program_source", None):  # JAX: compiled, or loaded from tfapp.program_cache
            autotune_record["train_program"] = trainer.program_source
        if autotune_record.get("source") in ("cache", "measured"):  # a choice slower in use than measured: stale
            # Judged on the loops that ran without the background work above, as the measurement ran.
            speed, seconds = outcome.steady_speed(after=futures.get("done_at", float("inf")))
            autotune_record["judged"] = {"steps_per_second": speed, "seconds": seconds}
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
        export_path, tflite = engine.write_export(experiment, futures.get("export"), write_dir)
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
    content.update(engine.report_extras(experiment))
    report.write_json(report.join(write_dir, "report.json"), content)
    if not experiment.is_chief:
        shutil.rmtree(write_dir, ignore_errors=True)
    return content


