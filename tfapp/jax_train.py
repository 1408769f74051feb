"""`--backend=jax`: the same task, pipeline and report on the Keras JAX backend, data-parallel over every device.

    KERAS_BACKEND=jax tfapp-train --task=digits --backend=jax       # tfapp-train sets KERAS_BACKEND itself
    XLA_FLAGS=--xla_force_host_platform_device_count=2 tfapp-train --backend=jax   # two CPU "devices"

For TPU VMs whose TensorFlow has no TPU runtime (free Colab TPUs): JAX drives the TPU cores, TensorFlow only
runs the tf.data pipeline on the host. The model is trained by Keras `fit` under
`keras.distribution.DataParallel` over `jax.devices()` (the global batch is split across them), with
`steps_per_execution` = `--steps_per_loop` (auto: 16) and XLA always on. Tasks build their models from
`keras.layers`/`keras.ops` only, so they run unchanged. Evaluation, metrics.csv, TensorBoard, curves.png and
report.json are as on the TensorFlow path; weights go to `<model_dir>/model.weights.h5`, and the SavedModel
export runs `tfapp-export` in a TensorFlow-backend subprocess that loads them. Not on this path: checkpoint
resume, NaN restore, autotune, FLOPs/MFU and multi-host JAX.
"""
import dataclasses
import os
import subprocess
import sys
import time

import jax
import keras
import tensorflow as tf  # tf.data and tf.io.gfile only: the model runs on JAX

import pipelines
from tfapp import checkpoints, plots, report



class _Recorder(keras.callbacks.Callback):
    """Logs train/eval metrics per `fit` epoch (= one eval interval) and times the steps after the first epoch."""

    def __init__(self, run_log, steps_per_epoch):
        super().__init__()
        self.run_log, self.steps_per_epoch = run_log, steps_per_epoch
        self.epoch_times, self.eval_metrics, self.first_epoch_seconds = [], {}, None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    # Overriding the batch-end hooks keeps Keras from running them on a thread pool ("async dispatch"): there,
    # reading sharded metric values from a second Python thread launches collectives out of order on the CPU
    # devices, and XLA's in-process all-reduce waits forever (seen with 2 forced CPU devices, jaxlib 0.10.2).
    def on_train_batch_end(self, batch, logs=None):
        pass

    def on_test_batch_end(self, batch, logs=None):
        pass

    def on_predict_batch_end(self, batch, logs=None):
        pass

    def on_test_begin(self, logs=None):
        self._train_seconds = time.perf_counter() - self._start

    def on_epoch_end(self, epoch, logs=None):
        step = (epoch + 1) * self.steps_per_epoch
        train_seconds = getattr(self, "_train_seconds", time.perf_counter() - self._start)
        if epoch == 0:
            self.first_epoch_seconds = train_seconds
        else:
            self.epoch_times.append(train_seconds)
        logs = {k: float(v) for k, v in (logs or {}).items()}
        self.run_log.log(step, "train", {k: v for k, v in logs.items() if not k.startswith("val_")})
        self.eval_metrics = {k[4:]: v for k, v in logs.items() if k.startswith("val_")}
        self.run_log.log(step, "eval", self.eval_metrics)
        self.run_log.flush()

    @property
    def steps_per_second(self):
        return self.steps_per_epoch * len(self.epoch_times) / sum(self.epoch_times) if self.epoch_times else None


def _per_example(loss):
    """Keras `compile` wraps a plain function and applies sample weights (eval padding) and the mean itself."""
    def loss_fn(y_true, y_pred):
        return loss(y_true, y_pred)
    return loss_fn


def _export_in_tensorflow_process(model_dir):
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    out = subprocess.run([sys.executable, "-m", "tfapp.cli.export", f"--model_dir={model_dir}"], env=env,
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"export after the JAX run failed: {out.stderr.strip().splitlines()[-1:]}")
    return out.stdout.strip().splitlines()[-1].removeprefix("exported ").split(" and ")[0]


def train(config, task, source, build_optimizer, start_time):
    """Trains `task` on `source` with Keras fit on the JAX backend; returns the report dict."""
    devices = jax.devices()
    if config.batch_size % len(devices):
        raise ValueError(f"--batch_size={config.batch_size} (global) is not divisible by {len(devices)} JAX devices")
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    keras.utils.set_random_seed(config.seed)
    preprocess = task.preprocessor(source.spec)
    train_data = pipelines.train_dataset(source.splits["train"], preprocess, config.batch_size, config.seed,
                                         cache=config.cache, vectorized=task.vectorized_preprocess,
                                         arrays=(source.arrays or {}).get("train"))
    eval_data = pipelines.eval_dataset(source.splits["test"], preprocess, config.batch_size,
                                       source.num_examples["test"], vectorized=task.vectorized_preprocess)
    model = task.models[config.model](config, source.spec)
    steps_per_execution = 16 if config.steps_per_loop == "auto" else int(config.steps_per_loop)
    # weighted_metrics: Keras applies sample weights (0 on eval padding) only to those, not to `metrics`.
    model.compile(optimizer=build_optimizer(config), loss=_per_example(task.loss()),
                  weighted_metrics=task.metrics(), steps_per_execution=min(steps_per_execution, config.eval_every),
                  jit_compile=True)
    tf.io.gfile.makedirs(config.model_dir)
    checkpoints.write_config(config.model_dir, dataclasses.asdict(config))
    run_log = report.RunLog(config.model_dir)
    run_log.log_hparams(dataclasses.asdict(config))
    recorder = _Recorder(run_log, config.eval_every)
    epochs = max(1, config.train_steps // config.eval_every)
    model.fit(train_data, steps_per_epoch=config.eval_every, epochs=epochs, validation_data=eval_data,
              callbacks=[recorder], verbose=2)
    run_log.close()
    model.save_weights(report.join(config.model_dir, checkpoints.WEIGHTS_FILE))
    extra, baselines = task.whole_test_set_figures(model, source, config, eval_data)
    final = {**recorder.eval_metrics, **extra}
    export_path = _export_in_tensorflow_process(config.model_dir) if config.export else None
    plots.plot_curves(run_log.series, task.main_metric, report.join(config.model_dir, "curves.png"),
                      title=f"{task.name} / {config.model} — JAX DataParallel × {len(devices)}")
    speed = recorder.steps_per_second
    content = {
        "task": task.name, "config": dataclasses.asdict(config), "backend": "jax",
        "final_metrics": final, "baselines": baselines,
        "steps": epochs * config.eval_every, "status": "finished", "main_metric": task.main_metric,
        "steps_per_second": speed, "examples_per_second": speed * config.batch_size if speed else None,
        "time_to_first_step_s": recorder.first_epoch_seconds, "wall_time_s": time.time() - start_time,
        "strategy": f"keras.distribution.DataParallel over {len(devices)} {devices[0].platform} device(s)",
        "num_replicas": len(devices), "jit_compile": True, "steps_per_loop": steps_per_execution,
        "keras_version": keras.__version__, "jax_version": jax.__version__,
        "device": str(devices[0].device_kind), "num_examples": dict(source.num_examples),
        "export_path": export_path,
    }
    report.write_json(report.join(config.model_dir, "report.json"), content)
    return content
