"""Run records: `metrics.csv` rows and TensorBoard scalars as training goes, `report.json` at the end.

    python -c "import json; print(json.load(open('runs/LATEST/report.json'))['final_metrics'])"

Every file goes through tf.io.gfile, so a `gs://` (or `ram://`) model_dir works like a local one.
"""
import csv
import io
import json
import os
import platform

import dataclasses

import keras
import tensorflow as tf

import strategies
from tfapp.config import PRECISIONS

CSV_HEADER = ("step", "split", "metric", "value")


def join(*parts):
    """Path join that keeps URL schemes (gs://, ram://) intact."""
    return os.path.join(*parts)


class RunLog:
    """Collects (step, split, metric, value) rows; TensorBoard scalars as they arrive, metrics.csv on `flush()`."""

    def __init__(self, model_dir, keep_until=None):
        """keep_until: resuming at this step, keep the rows of metrics.csv up to it (later ones are redone)."""
        self.model_dir = model_dir
        self.rows = []
        self._writers = {}
        path = join(model_dir, "metrics.csv")
        if keep_until is not None and tf.io.gfile.exists(path):
            with tf.io.gfile.GFile(path) as f:
                self.rows = [(int(r["step"]), r["split"], r["metric"], float(r["value"])) for r in csv.DictReader(f)
                             if int(r["step"]) <= keep_until and r["split"] != "test"]  # tested again at the end

    def _writer(self, split):
        if split not in self._writers:
            self._writers[split] = tf.summary.create_file_writer(join(self.model_dir, "tensorboard", split))
        return self._writers[split]

    def log(self, step, split, values, csv_too=True):
        """Records {metric: value} for `split` ("train", "validation", "test") at `step`. `csv_too=False`:
        TensorBoard only, for timing values (steps/s, MFU) that would make metrics.csv differ between identical runs."""
        if csv_too:
            self.rows.extend((int(step), split, name, float(value)) for name, value in values.items())
        with self._writer(split).as_default(step=int(step)):
            for name, value in values.items():
                tf.summary.scalar(name, float(value))

    def log_hparams(self, hparams):
        """The run's settings for TensorBoard's HParams dashboard (sweeps compare runs there)."""
        from tensorboard.plugins.hparams import api as hp
        # At the tensorboard/ root: the HParams view then finds the metrics under the "train"/"validation" groups.
        with tf.summary.create_file_writer(join(self.model_dir, "tensorboard")).as_default() as writer:
            hp.hparams({k: v for k, v in hparams.items() if isinstance(v, (bool, int, float, str))})
            writer.flush()

    def flush(self):
        """Rewrites metrics.csv with every row so far (gfile cannot append on every filesystem): into a new file
        renamed over the old one, so a kill during the write leaves the previous rows, never a truncated file."""
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows([CSV_HEADER, *self.rows])
        path = join(self.model_dir, "metrics.csv")
        with tf.io.gfile.GFile(path + ".tmp", "w") as f:
            f.write(buffer.getvalue())
        tf.io.gfile.rename(path + ".tmp", path, overwrite=True)
        for writer in self._writers.values():
            writer.flush()

    def series(self, split, metric):
        """[(step, value), …] of one metric, for plots."""
        return [(step, value) for step, s, name, value in self.rows if s == split and name == metric]

    def close(self):
        self.flush()
        for writer in self._writers.values():
            writer.close()


def accelerator(strategy):
    """(platform, device kind) of the run's first accelerator, e.g. ("GPU", "NVIDIA A100-SXM4-40GB") or
    ("TPU", "TPU v4"); None on CPUs."""
    jax_devices = getattr(strategy, "devices", None)  # strategies.jax_mesh.JaxDevices
    if jax_devices is not None:
        first = jax_devices[0]
        return None if first.platform == "cpu" else (first.platform.upper(), first.device_kind)
    for kind in ("TPU", "GPU"):
        physical = tf.config.list_physical_devices(kind)
        if physical:
            return kind, tf.config.experimental.get_device_details(physical[0]).get("device_name", kind)
    return None


def device_description(strategy):
    """e.g. "CPU (AMD EPYC, 2 cores)" or "GPU (NVIDIA A100) x 2": what the run's replicas ran on."""
    found = accelerator(strategy)
    if found is None:
        return f"CPU ({cpu_name()}, {os.cpu_count()} cores)"
    count = len(strategy.devices) if hasattr(strategy, "devices") else strategy.num_replicas_in_sync
    return f"{found[0]} ({found[1]}) x {count}"


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write_json(path, content):
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(json.dumps(content, indent=2, sort_keys=True) + "\n")


def peak_of_devices(experiment, device_peak):
    """{"peak", "peak_method"}: `device_peak(dtype, device_kind, device_key)` of one device in the run's compute
    dtype, times the accelerators (each its own device); a CPU counts once, whatever its logical devices."""
    dtype = keras.dtype_policies.get(PRECISIONS[experiment.config.mixed_precision]).compute_dtype
    found = accelerator(experiment.strategy)
    device = device_description(experiment.strategy)
    per_device, method = device_peak(dtype, found[1] if found else None, device)
    devices = experiment.strategy.devices if hasattr(experiment.strategy, "devices") else None
    count = 1 if found is None else len(devices) if devices else experiment.strategy.num_replicas_in_sync
    return {"peak": per_device * count, "peak_method": f"{method}, x {count} device(s)"}


def build_report(experiment, trainer, outcome, steps_per_loop, autotune_record, export_path, wall_time, flops):
    """The report.json content (keys documented in the README)."""
    config = experiment.config
    speed = outcome.steps_per_second
    device = device_description(experiment.strategy)
    flops_per_step, peak = flops["flops_per_step"], flops["peak"]
    achieved = flops_per_step * speed if speed else None
    return {
        "task": experiment.task.name,
        "config": dataclasses.asdict(config),
        # the test split, read once at the end on the kept weights; validation decided everything before
        "final_metrics": outcome.test_metrics,
        "test": {"metrics": outcome.test_metrics, "step": outcome.kept_step},
        "validation": {"metrics": outcome.best_metrics if config.keep == "best" else outcome.eval_metrics,
                       "best_step": outcome.best_step, "best": outcome.best_metrics, "last": outcome.eval_metrics},
        "keep": config.keep,
        "kept_step": outcome.kept_step,
        "baselines": outcome.baselines,
        "steps": outcome.steps,
        "stopped_early": outcome.stopped_early,
        "status": "finished",
        "resumed_from": experiment.resumed_from,
        "resumed_at_step": outcome.start_step,
        "nan_restores": outcome.nan_restores,
        "main_metric": experiment.task.main_metric,
        "target_metric": config.target_metric,
        "time_to_target_s": outcome.time_to_target,
        "step_to_target": outcome.step_to_target,
        "steps_per_second": speed,
        "examples_per_second": speed * config.batch_size if speed else None,
        "input_wait_fraction": outcome.input_wait_fraction,
        "input_handover_fraction": outcome.input_handover_fraction,
        "phases_s": {"loops": outcome.compile_seconds + outcome.timed_seconds, "eval": outcome.eval_seconds,
                     "checkpoint": outcome.checkpoint_seconds},  # run.train adds "finish" (export, plots, …)
        "skipped_files": experiment.source.spec.get("skipped", []),
        "time_to_first_step_s": outcome.time_to_first_step,
        "compile_time_s": outcome.compile_seconds,
        "wall_time_s": wall_time,
        "strategy": strategies.describe(experiment.strategy),
        "num_replicas": experiment.strategy.num_replicas_in_sync,
        "jit_compile": trainer.jit_compile,
        "steps_per_loop": steps_per_loop,
        "autotune": autotune_record,
        "mixed_precision": config.mixed_precision,
        "flops_per_step": flops_per_step,
        "flops_method": flops["flops_method"],
        # the task's formula for the same FLOPs (the transformer's 6·N·tokens + attention), a check of the count
        "flops_per_step_formula": experiment.task.reference_flops(experiment.model, experiment.source.spec, config)
        if experiment.task.reference_flops else None,
        "achieved_flops_per_second": achieved,
        "peak_flops_per_second": peak,
        "peak_flops_method": flops["peak_method"],
        "mfu": achieved / peak if achieved else None,
        "backend": experiment.engine,
        "tf_version": tf.__version__,
        "keras_version": keras.__version__,
        "device": device,
        "num_examples": dict(experiment.source.num_examples),
        "export_path": export_path,
    }
