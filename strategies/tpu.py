"""TPU discovery from local signals only, then TPUStrategy.

    python -c "import strategies; print(strategies.local_tpu_signals())"

`TPUClusterResolver()` with no argument asks the GCE metadata server, which is a slow failure on a laptop and
network traffic we never want by accident. So we first look at signals on this machine (TPU environment variables,
`/dev/accel*` and `/dev/vfio/<n>` device nodes, an explicit `--tpu`) and build a resolver only when one is present.
`RESOLVER_FACTORY` is the single place a resolver is built, so tests replace it with a stub.
"""
import glob
import os

import tensorflow as tf

# Environment variables set on Cloud TPU VMs, TPU pods and the legacy Colab TPU runtime.
TPU_ENV_VARS = ("TPU_NAME", "TPU_ACCELERATOR_TYPE", "TPU_WORKER_HOSTNAMES", "COLAB_TPU_ADDR")
TPU_DEVICE_GLOBS = ("/dev/accel*", "/dev/vfio/[0-9]*")


def local_tpu_signals(environ=None, device_globs=TPU_DEVICE_GLOBS):
    """Returns the local hints that a TPU is attached, e.g. ["env:TPU_NAME", "/dev/accel0"]; [] when none."""
    environ = os.environ if environ is None else environ
    signals = [f"env:{name}" for name in TPU_ENV_VARS if environ.get(name)]
    for pattern in device_globs:
        signals.extend(sorted(glob.glob(pattern)))
    return signals


def resolver_address(tpu, environ=None):
    """The `tpu=` argument for TPUClusterResolver: the flag, the legacy Colab address, or 'local' (a TPU VM)."""
    environ = os.environ if environ is None else environ
    if tpu:
        return tpu
    if environ.get("COLAB_TPU_ADDR"):
        return "grpc://" + environ["COLAB_TPU_ADDR"]
    if environ.get("TPU_NAME"):
        return environ["TPU_NAME"]
    return "local"


def _make_resolver(address):
    return tf.distribute.cluster_resolver.TPUClusterResolver(tpu=address)


RESOLVER_FACTORY = _make_resolver  # replaced by a stub in tests; never called without a local signal or --tpu


def tpu_strategy(tpu=None):
    """Connects to the TPU named by `tpu` (or the local one) and returns a TPUStrategy."""
    address = resolver_address(tpu)
    resolver = RESOLVER_FACTORY(address)
    if address != "local":
        tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)
