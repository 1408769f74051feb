"""FLOPs of one train step (TF's profiler on the step's graph) and the device's peak (a measured matmul), for MFU.

    python -c "from tfapp import flops; print(flops.peak_flops_per_second('float32'))"

`step_flops` counts the float operations of forward + backward for one replica's batch with
`tf.compat.v1.profiler`'s `float_operation` view (ops with registered FLOP statistics: MatMul, Conv2D and their
gradients, BiasAdd, element-wise math), times the number of replicas. The optimizer update is not counted.
The peak is a bounded square-matmul measurement on the first compute device, cached per machine and dtype in
`peak_flops.json` of the tfapp cache directory (`tfapp/local_cache.py`; delete it to re-measure).
"""
import contextlib
import hashlib
import json
import os
import sys
import time

import tensorflow as tf

from tfapp import local_cache

CACHE_FILE = "peak_flops.json"  # in local_cache.directory()
STEP_CACHE_FILE = "step_flops.json"  # FLOPs per step of the models measured on this machine


def step_flops(model, loss_fn, features_spec, labels_spec, num_replicas=1):
    """Float ops of forward + backward on one replica's batch (TensorSpecs), times `num_replicas`."""
    @tf.function
    def gradients(features, labels):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(loss_fn(labels, model(features, training=True)))
        return tape.gradient(loss, model.trainable_variables)

    graph = gradients.get_concrete_function(features_spec, labels_spec).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    logger, level = tf.get_logger(), tf.get_logger().level
    logger.setLevel("ERROR")  # the v1 profiler warns that it is a v1 API on every call
    try:
        with _native_stdout_silenced():  # "N ops no flops stats due to incomplete shapes." (recurrent layers)
            return float(tf.compat.v1.profiler.profile(graph, options=options).total_float_ops) * num_replicas
    finally:
        logger.setLevel(level)


def cached_step_flops(model, loss_fn, features_spec, labels_spec, num_replicas=1, cache_path=None):
    """`step_flops`, kept in step_flops.json of the tfapp cache under the model's architecture (`to_json`), the
    loss, the batch specs, the replicas and the TF version: the same command counts them once (tracing forward and
    backward again costs ~1-2 s of CPU, which on 2 busy cores comes out of training). A model without a complete
    `get_config` is counted every time."""
    try:
        architecture = model.to_json()
    except (TypeError, ValueError, NotImplementedError):
        return step_flops(model, loss_fn, features_spec, labels_spec, num_replicas)
    described = [architecture, getattr(loss_fn, "__name__", type(loss_fn).__name__), str(features_spec),
                 str(labels_spec), num_replicas, tf.__version__]
    key = hashlib.sha1(json.dumps(described).encode()).hexdigest()
    return local_cache.memoized(cache_path or local_cache.path(STEP_CACHE_FILE), key,
                                lambda: step_flops(model, loss_fn, features_spec, labels_spec, num_replicas))


@contextlib.contextmanager
def _native_stdout_silenced():
    """Points file descriptor 1 at /dev/null meanwhile: the profiler's C++ code prints there directly."""
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _measure_peak(dtype, size, seconds):
    a = tf.random.uniform([size, size], dtype=tf.float32)
    a = tf.cast(a, dtype)

    @tf.function
    def matmuls(x, n):
        for _ in tf.range(n):
            x = tf.matmul(x, a) * tf.cast(1.0 / size, dtype)  # keep values bounded
        return x

    matmuls(a, tf.constant(1)).numpy()
    n, elapsed = 1, 0.0
    while elapsed < seconds:
        n *= 2
        start = time.perf_counter()
        matmuls(a, tf.constant(n)).numpy()
        elapsed = time.perf_counter() - start
    return 2.0 * size ** 3 * n / elapsed


def peak_flops_per_second(dtype="float32", device_key="", size=1024, seconds=0.3, cache_path=None,
                          measure=_measure_peak):
    """Measured matmul FLOP/s for `dtype` on this machine, cached under `device_key` (e.g. the device string) in
    `cache_path` (default: peak_flops.json in the tfapp cache directory); `measure(tf dtype, size, seconds)`
    times it (the JAX engine passes a jitted one)."""
    return local_cache.memoized(cache_path or local_cache.path(CACHE_FILE), f"{device_key}|{dtype}|{size}",
                                lambda: measure(tf.as_dtype(dtype), size, seconds))
