"""`get_strategy(name, tpu=None, num_cpu_devices=None)`: the one place a tf.distribute.Strategy is chosen.

    python -c "import strategies; print(strategies.describe(strategies.get_strategy('auto')))"

Names: auto | default | one_device | mirrored | multi_worker | tpu.
`auto` = a TPU when a local signal (or `tpu=`) says one is there, else Mirrored when there are several GPUs (or
`num_cpu_devices` > 1 logical CPUs), else the default strategy on the one device. (The default strategy, not
OneDeviceStrategy: on this 2-core CPU the latter's distributed iterator and `run` cost 20–45% of the steps/s of
a small model — `python benchmarks/loop_speed.py` measures both.)
"""
import json
import os

import tensorflow as tf

from strategies import tpu as tpu_lib

NAMES = ("auto", "default", "one_device", "mirrored", "multi_worker", "tpu")
# A multi-worker collective (gradient all-reduce) that waits longer than this fails instead of hanging forever
# on a stuck peer; a peer that died fails at once (its connection resets).
COLLECTIVE_TIMEOUT_SECONDS = 300


class StrategyError(ValueError):
    """The requested strategy cannot be built on this machine; the message says why."""


def split_cpu(num_cpu_devices):
    """Splits the physical CPU into `num_cpu_devices` logical devices (must run before TF initialises devices)."""
    cpus = tf.config.list_physical_devices("CPU")
    wanted = [tf.config.LogicalDeviceConfiguration()] * num_cpu_devices
    current = tf.config.get_logical_device_configuration(cpus[0])
    if current is not None and len(current) == num_cpu_devices:
        return
    try:
        tf.config.set_logical_device_configuration(cpus[0], wanted)
    except RuntimeError as error:  # devices already initialised with another split
        have = len(tf.config.list_logical_devices("CPU"))
        raise StrategyError(
            f"--num_cpu_devices={num_cpu_devices}: TensorFlow already started with {have} CPU device(s) in this "
            f"process; set it before any TensorFlow op runs ({error})") from None


def _compute_devices():
    """GPUs if any, else the logical CPUs."""
    gpus = tf.config.list_logical_devices("GPU")
    return [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]


def _one_device():
    return tf.distribute.OneDeviceStrategy(_compute_devices()[0])


def _multi_worker():
    tf_config = os.environ.get("TF_CONFIG")
    if tf_config:
        try:
            json.loads(tf_config)
        except ValueError as error:
            raise StrategyError(f"--strategy=multi_worker: TF_CONFIG is not valid JSON ({error})") from None
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=COLLECTIVE_TIMEOUT_SECONDS)
    return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)


def _tpu(tpu):
    if not tpu and not tpu_lib.local_tpu_signals():
        raise StrategyError(
            "--strategy=tpu: no TPU found on this machine (no TPU_* environment variable, no /dev/accel* or "
            "/dev/vfio device); pass --tpu=NAME_OR_ADDRESS, or use --strategy=auto|default|mirrored")
    return tpu_lib.tpu_strategy(tpu)


def get_strategy(name="auto", tpu=None, num_cpu_devices=None):
    """Returns a tf.distribute.Strategy for `name`; raises StrategyError (a ValueError) if it cannot."""
    if name not in NAMES:
        raise StrategyError(f"--strategy: unknown strategy {name!r}; valid: {', '.join(NAMES)}")
    if num_cpu_devices is not None and num_cpu_devices < 1:
        raise StrategyError(f"--num_cpu_devices must be >= 1, got {num_cpu_devices}")
    if num_cpu_devices and num_cpu_devices > 1:
        split_cpu(num_cpu_devices)
    if name == "auto":
        if tpu or tpu_lib.local_tpu_signals():
            return _tpu(tpu)
        name = "mirrored" if len(_compute_devices()) > 1 else "default"
    if name == "tpu":
        return _tpu(tpu)
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one_device":
        return _one_device()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(_compute_devices())
    return _multi_worker()


def is_chief(strategy):
    """True on the worker that writes files: the only one, the `chief`, or worker 0 when there is no chief."""
    if hasattr(strategy, "input_context"):  # strategies.jax_mesh.JaxDevices: process 0
        return strategy.is_chief
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    cluster = resolver.cluster_spec().as_dict()
    if resolver.task_type == "chief":
        return True
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in cluster


def describe(strategy):
    """A short name for reports: 'MirroredStrategy' etc.; '_DefaultDistributionStrategy' becomes 'DefaultStrategy'."""
    if hasattr(strategy, "input_context"):  # strategies.jax_mesh.JaxDevices
        return strategy.describe()
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "MultiWorkerMirroredStrategy"  # its class is CollectiveAllReduceStrategy
    name = type(strategy).__name__
    return "DefaultStrategy" if name.startswith("_Default") else name
