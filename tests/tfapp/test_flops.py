"""FLOPs per step: counted by TF's profiler, kept per model architecture so the same command counts them once."""
import json
import os
import subprocess
import sys

import keras
import pytest
import tensorflow as tf

from tests.conftest import REPO
from tfapp import flops


def _mlp(width):
    """Named layers: Keras numbers unnamed ones per process, and the names are part of the architecture."""
    inputs = keras.Input((784,), name="x")
    hidden = keras.layers.Dense(width, activation="relu", name="hidden")(inputs)
    return keras.Model(inputs, keras.layers.Dense(10, name="logits")(hidden), name="mlp")


def test_step_flops_are_counted_once_per_architecture(tmp_path, monkeypatch):
    features, labels = tf.TensorSpec([32, 784], tf.float32), tf.TensorSpec([32], tf.int32)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
    cache = str(tmp_path / "step_flops.json")
    counted = []
    real = flops.step_flops
    monkeypatch.setattr(flops, "step_flops", lambda *args: counted.append(args[0]) or real(*args))

    first = flops.cached_step_flops(_mlp(256), loss, features, labels, cache_path=cache)
    # the matmuls dominate: forward and the kernels' gradients, 2 x 2 x 32 x (784 x 256 + 256 x 10) (no gradient
    # is needed for the inputs), within 10%
    assert 0.9 < first / (2 * 2 * 32 * (784 * 256 + 256 * 10)) < 1.1
    assert flops.cached_step_flops(_mlp(256), loss, features, labels, cache_path=cache) == first
    assert len(counted) == 1  # the second model of the same architecture came from the cache
    wider = flops.cached_step_flops(_mlp(512), loss, features, labels, cache_path=cache)
    assert wider > 1.9 * first and len(counted) == 2
    assert flops.cached_step_flops(_mlp(256), loss, features, labels, num_replicas=2, cache_path=cache) == 2 * first


def test_published_peaks_name_the_chip_and_the_column():
    from tfapp import peaks
    assert peaks.published("NVIDIA H200", "bfloat16")[0] == 989.4e12
    value, method = peaks.published("NVIDIA A100-SXM4-80GB", "float32")  # float32 matmuls run in TF32 there
    assert value == 156e12 and "tf32" in method and "NVIDIA A100" in method
    assert peaks.published("NVIDIA H100 PCIe", "bfloat16")[0] == 756e12
    assert peaks.published("NVIDIA H100 80GB HBM3", "float32")[0] == 494.7e12
    assert peaks.published("Tesla T4", "float32")[0] == 8.1e12 and peaks.published("Tesla T4", "float16")[0] == 65e12
    assert peaks.published("TPU v5 lite", "float32")[0] == 197e12  # TPUs: bfloat16 passes
    assert peaks.published("TPU v5p", "bfloat16")[0] == 459e12 and peaks.published("TPU v4", "bfloat16")[0] == 275e12
    assert peaks.published("TPU v6 lite", "bfloat16")[0] == 918e12
    assert peaks.published("NVIDIA L4", "bfloat16")[0] == 121e12
    for unknown in ("NVIDIA L40S", "AMD Instinct MI300X", None, "cpu"):
        assert peaks.published(unknown, "float32") is None, unknown


def test_a_measured_peak_grows_its_matmuls_until_their_flops_stop_rising(tmp_path):
    speeds = {256: 10e9, 512: 20e9, 1024: 40e9, 2048: 41e9, 4096: 80e9}
    tried = []

    def measure(dtype, size, seconds):
        tried.append(size)
        return speeds[size]

    assert flops.saturated_peak(measure, tf.float32) == (41e9, 2048)  # +2.5% is no longer rising
    assert tried == [256, 512, 1024, 2048]
    # Nor is a size tried whose one product would take too long at the best speed so far (2 x 4096^3 / 1e9 > 0.5 s)
    tried.clear()
    assert flops.saturated_peak(lambda d, size, s: tried.append(size) or 1e9, tf.float32, sizes=(256, 4096))[1] == 256
    assert tried == [256]
    cache = str(tmp_path / "peak.json")
    value, method = flops.device_peak("float32", None, "some CPU", measure=measure, cache_path=cache)
    assert value == 41e9 and method.startswith("measured") and cache in method
    tried.clear()
    assert flops.device_peak("float32", None, "some CPU", measure=measure, cache_path=cache)[0] == 41e9
    assert not tried  # cached
    assert flops.device_peak("bfloat16", "NVIDIA H200", "x", measure=measure, cache_path=cache)[0] == 989.4e12
    assert not tried  # a recognised chip is not measured


JAX_COUNT = """
import json, sys
import jax, numpy as np
from tfapp import config, tasks
from tfapp.engines import jax_engine
task = tasks.get_task("language_model")
out = {}
for name, batch, context in (("gpt", 16, 64), ("gpt_small", 64, 256)):
    run_config = config.Config(task="language_model", model=name, batch_size=batch, sequence_length=context).resolved()
    spec = {"sequence_length": context, "vocabulary_size": 66}
    model = task.models[name](run_config, spec)
    batch_spec = (jax.ShapeDtypeStruct((batch, context), np.int32),) * 2
    out[name] = [jax_engine.count_loss_gradient_flops(model, task.loss(), batch, batch_spec),
                 task.reference_flops(model, spec, run_config)]
print(json.dumps(out))
"""


@pytest.mark.parametrize("engine", ["tensorflow", "jax"])
def test_transformer_flops_are_within_15_percent_of_6_n_tokens_plus_attention(engine):
    """Both engines count FLOPs from the program, not the kernels a backend picks (a compiled GPU program hides its
    cuBLAS calls from XLA's analysis); at nanoGPT's CPU size (gpt, 16 x 64) and GPU size (gpt_small, 64 x 256)."""
    from tfapp import config as config_lib
    from tfapp import tasks
    if engine == "jax":
        pytest.importorskip("jax")
        out = subprocess.run([sys.executable, "-c", JAX_COUNT], cwd=REPO, capture_output=True, text=True, timeout=300,
                             env={**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"})
        assert out.returncode == 0, out.stderr[-3000:]
        counts = json.loads(out.stdout.strip().splitlines()[-1])
    else:
        task, counts = tasks.get_task("language_model"), {}
        for name, batch, context in (("gpt", 16, 64), ("gpt_small", 64, 256)):
            run_config = config_lib.Config(task="language_model", model=name, batch_size=batch,
                                           sequence_length=context).resolved()
            spec = {"sequence_length": context, "vocabulary_size": 66}
            model = task.models[name](run_config, spec)
            ids = tf.TensorSpec([batch, context], tf.int32)
            counts[name] = [flops.step_flops(model, task.loss(), ids, ids),
                            task.reference_flops(model, spec, run_config)]
    for name, (counted, formula) in counts.items():
        assert 0.85 < counted / formula < 1.15, (name, counted, formula)
    assert counts["gpt_small"][1] > 100 * counts["gpt"][1]
