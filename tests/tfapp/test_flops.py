"""FLOPs per step: counted by TF's profiler, kept per model architecture so the same command counts them once."""
import keras
import tensorflow as tf

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
