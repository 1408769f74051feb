"""The JAX engine's devices: a `keras.distribution` over every JAX device (of every host), and how batches split.

    XLA_FLAGS=--xla_force_host_platform_device_count=2 tfapp-train --backend=jax    # two CPU devices, one host

The counterpart of `get_strategy` for `--backend=jax`: `get_devices()` sets `keras.distribution.DataParallel`
over `jax.devices()` (variables replicated, the batch split over the mesh axis `batch`) and returns a `JaxDevices`
that the run reads like a strategy (`num_replicas_in_sync`, `is_chief`, `describe()`, an input context per host).
Several hosts (a TPU pod slice, or local processes): `initialize()` first, which starts JAX's distributed runtime
from `KERAS_DISTRIBUTION_JOB_ADDRESSES` / `KERAS_DISTRIBUTION_NUM_PROCESSES` / `KERAS_DISTRIBUTION_PROCESS_ID`
(on Cloud TPU VMs JAX finds them itself); on CPUs the collectives run over gloo.
"""
import dataclasses
import os

import jax
import keras
import tensorflow as tf  # tf.distribute.InputContext only: which share of the data this host reads

MULTI_PROCESS_VARIABLES = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES",
                           "KERAS_DISTRIBUTION_PROCESS_ID")
HEARTBEAT_SECONDS = int(os.environ.get("TFAPP_JAX_HEARTBEAT_SECONDS", "30"))  # a silent peer counts as dead after


@dataclasses.dataclass
class JaxDevices:
    distribution: object
    devices: list

    @property
    def num_replicas_in_sync(self):
        """Data-parallel width: the global batch is split over this many devices."""
        return len(self.devices)

    @property
    def is_chief(self):
        return jax.process_index() == 0

    def describe(self):
        return f"JAX DataParallel over {len(self.devices)} {self.devices[0].platform} device(s)" + (
            f" on {jax.process_count()} processes" if jax.process_count() > 1 else "")

    def input_context(self):
        """One input pipeline per host (process): each reads its shard and a 1/processes share of the batch."""
        processes = jax.process_count()
        return tf.distribute.InputContext(num_input_pipelines=processes, input_pipeline_id=jax.process_index(),
                                          num_replicas_in_sync=processes)

    def block_sharding(self):
        """Sharding of a [K, batch, ...] block: axis 1 (the batch) split over the mesh's `batch` axis."""
        mesh = self.distribution.device_mesh.backend_mesh
        return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(None, "batch"))


def initialize():
    """Starts JAX's multi-process runtime when the KERAS_DISTRIBUTION_* variables ask for it (gloo on CPU), as
    `keras.distribution.initialize` does, with a heartbeat of HEARTBEAT_SECONDS: a process whose peer died is
    stopped by JAX's coordination service then, instead of waiting in a collective."""
    if not any(os.environ.get(name) for name in MULTI_PROCESS_VARIABLES) or jax.distributed.is_initialized():
        return
    missing = [name for name in MULTI_PROCESS_VARIABLES if not os.environ.get(name)]
    if missing:
        raise ValueError(f"--backend=jax on several processes needs {', '.join(MULTI_PROCESS_VARIABLES)}; "
                         f"{', '.join(missing)} not set")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    addresses = os.environ["KERAS_DISTRIBUTION_JOB_ADDRESSES"].split(",")
    jax.distributed.initialize(coordinator_address=addresses[0],
                               num_processes=int(os.environ["KERAS_DISTRIBUTION_NUM_PROCESSES"]),
                               process_id=int(os.environ["KERAS_DISTRIBUTION_PROCESS_ID"]),
                               heartbeat_timeout_seconds=HEARTBEAT_SECONDS, initialization_timeout=120)


def get_devices(global_batch_size):
    """DataParallel over all JAX devices, set as Keras' distribution; raises ValueError when the batch does not
    split evenly."""
    devices = jax.devices()
    if global_batch_size % len(devices):
        raise ValueError(f"--batch_size={global_batch_size} (global) is not divisible by {len(devices)} JAX devices")
    distribution = keras.distribution.DataParallel(devices=devices)
    keras.distribution.set_distribution(distribution)
    return JaxDevices(distribution, devices)
