"""Mixed precision, learning-rate schedules and Keras callbacks (EarlyStopping, user callbacks) on the real loop."""
import csv
import os
import time

import keras
import pytest

from tfapp import config as config_lib
from tfapp import run


def _config(tmp_path, **changes):
    """A small run; the values given here are kept (no smoke overrides)."""
    values = {"batch_size": 32, "train_steps": 20, "eval_every": 10, **changes}
    return config_lib.Config(model="mlp", strategy="default", export=False, steps_per_loop="5",
                             jit_compile="false", model_dir=str(tmp_path / "run"), **values).resolved()


@pytest.mark.parametrize("precision, compute_dtype", [("bfloat16", "bfloat16"), ("float16", "float16")])
def test_mixed_precision_trains_with_float32_variables(tmp_path, precision, compute_dtype):
    experiment = run.prepare(_config(tmp_path, mixed_precision=precision, train_steps=40))
    dense = experiment.model.layers[3]
    assert dense.compute_dtype == compute_dtype and dense.kernel.dtype == "float32"
    assert experiment.model.layers[-1].compute_dtype == "float32"  # logits stay float32
    assert isinstance(experiment.optimizer, keras.optimizers.LossScaleOptimizer) == (precision == "float16")
    report = run.train(experiment)
    assert report["final_metrics"]["loss"] < 2.0 and report["mixed_precision"] == precision
    assert keras.config.dtype_policy().name == "float32"  # global policy restored


def test_muon_orthogonalizes_hidden_kernels_and_leaves_the_output_layer_to_adam(tmp_path):
    experiment = run.prepare(_config(tmp_path, optimizer="muon", train_steps=40))
    optimizer, model = experiment.optimizer, experiment.model
    assert isinstance(optimizer, keras.optimizers.Muon)
    adam_step = {v.path: optimizer._should_use_adamw(v) for v in model.trainable_variables}
    output = model.layers[-1].name
    assert adam_step[f"{output}/kernel"] and adam_step[f"{output}/bias"]  # the output layer: Adam
    hidden = [path for path, adam in adam_step.items() if path.endswith("kernel") and not path.startswith(output)]
    assert hidden and not any(adam_step[path] for path in hidden)  # every hidden 2-D kernel: Muon
    # no decay, and none of Keras's Muon `variable - variable * 0 * lr` ops (built for a decay of 0.0, not None)
    assert optimizer.weight_decay is None and optimizer.adam_weight_decay is None
    report = run.train(experiment)
    assert report["final_metrics"]["accuracy"] > 0.8 and report["config"]["optimizer"] == "muon"


def test_cosine_schedule_decays_to_zero(tmp_path):
    config = _config(tmp_path, lr_schedule="cosine", warmup_steps=5, train_steps=40, learning_rate=1e-2)
    run.run(config)
    with open(os.path.join(config.model_dir, "metrics.csv")) as f:
        rates = [float(r["value"]) for r in csv.DictReader(f) if r["metric"] == "learning_rate"]
    assert rates[0] < rates[1]  # warming up
    assert max(rates) == pytest.approx(1e-2, rel=0.2)
    assert rates[-1] < 1e-4


class _Recorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def on_train_begin(self, logs=None):
        self.calls.append("train_begin")

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(("epoch_end", epoch, sorted(k for k in logs if k.startswith("val_"))))

    def on_train_end(self, logs=None):
        self.calls.append("train_end")


def test_user_callbacks_and_early_stopping(tmp_path):
    recorder = _Recorder()
    # learning_rate so high the model cannot improve: patience 1 stops after the second evaluation.
    config = _config(tmp_path, early_stopping_patience=1, train_steps=100, eval_every=10, learning_rate=50.0)
    report = run.run(config, callbacks=[recorder])
    assert report["stopped_early"] and report["steps"] < 100
    assert recorder.calls[0] == "train_begin" and recorder.calls[-1] == "train_end"
    assert recorder.calls[1] == ("epoch_end", 0, ["val_accuracy", "val_loss"])


class _SlowHost(keras.callbacks.Callback):
    """Host work after every loop (counted in the run's steps/s, as a user's throughput) and after each evaluation
    (not counted: an evaluation is not training)."""

    def on_train_batch_end(self, batch, logs=None):
        time.sleep(0.05)

    def on_epoch_end(self, epoch, logs=None):
        time.sleep(0.5)


def test_steps_per_second_counts_host_work_between_loops_but_not_evaluations(tmp_path):
    # 8 loops of 5 steps; the first (tracing) is not timed, so 35 timed steps, each of their 7 loops after the
    # 50 ms that followed the loop before; the 0.5 s after the evaluation at step 20 is left out.
    report = run.run(_config(tmp_path, train_steps=40, eval_every=20), callbacks=[_SlowHost()])
    timed_seconds = 35 / report["steps_per_second"]
    assert 7 * 0.05 <= timed_seconds < 7 * 0.05 + 0.4
