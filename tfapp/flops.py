"""FLOPs of one train step and the peak FLOP/s of the device, for MFU.

    python -c "from tfapp import flops; print(flops.device_peak('float32', None, 'this CPU'))"

`step_flops` counts the float operations of forward + backward for one replica's batch with
`tf.compat.v1.profiler`'s `float_operation` view of the graph (ops with registered FLOP statistics: MatMul,
Conv2D and their gradients, BiasAdd, element-wise math), times the number of replicas: a count of the program,
not of the kernels a backend picks. The optimizer update is not counted (MFU counts the model's FLOPs; the JAX
engine counts the same, see tfapp.engines.jax_engine). The transformer's count is within 10% of 6·N·tokens + attention
(tests/tfapp/test_flops.py).
`device_peak`: the chip's published dense peak where `tfapp.peaks` recognises it, else square matmuls in the
compute dtype measured on the first device, grown until their FLOP/s stop rising (a 1024-sized product
understates a GPU's peak several times), cached per machine and dtype in `peak_flops.json` of the tfapp cache
directory (`tfapp/local_cache.py`; delete it to re-measure).
"""
import contextlib
import hashlib
import json
import os
import sys
import time

import tensorflow as tf

from tfapp import local_cache, peaks

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


SIZES = (256, 512, 1024, 2048, 4096, 8192)  # square matmul sizes tried in turn while their FLOP/s rise
RISE = 1.05  # a size counts as faster than the last only by more than 5%
MAX_MATMUL_SECONDS = 0.5  # a size whose single product would take longer than this is not tried


def saturated_peak(measure, dtype, seconds=0.2, sizes=SIZES):
    """(FLOP/s, size): `measure(dtype, size, seconds)` for growing sizes until the FLOP/s stop rising by more than
    RISE (or the next product would take over MAX_MATMUL_SECONDS); the best seen."""
    best, best_size = 0.0, None
    for size in sizes:
        if best and 2.0 * size ** 3 / best > MAX_MATMUL_SECONDS:
            break
        speed = measure(dtype, size, seconds)
        rising = speed > RISE * best
        if speed > best:
            best, best_size = speed, size
        if not rising:
            break
    return best, best_size


def device_peak(dtype, device_kind, device_key, measure=_measure_peak, cache_path=None):
    """(peak FLOP/s of one device in compute `dtype`, how it was obtained). `device_kind`: the accelerator's
    name (JAX's `device_kind`, TF's `device_name`; None on CPUs), looked up in `tfapp.peaks`; otherwise measured
    with `measure(tf dtype, size, seconds)` (the JAX engine passes a jitted one) and cached under `device_key`."""
    found = peaks.published(device_kind, dtype)
    if found:
        return found
    cache_path = cache_path or local_cache.path(CACHE_FILE)
    value = local_cache.memoized(cache_path, f"{device_key}|{dtype}|saturated",
                                 lambda: saturated_peak(measure, tf.as_dtype(dtype))[0])
    return value, (f"measured: {dtype} square matmuls on one device, grown until their FLOP/s stopped rising "
                   f"(cached in {cache_path})")
