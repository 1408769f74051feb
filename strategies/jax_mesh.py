"""The JAX engine's devices: a `keras.distribution` over every JAX device (of every host), and how batches split.

    XLA_FLAGS=--xla_force_host_platform_device_count=2 tfapp-train --backend=jax    # two CPU devices, one host
    XLA_FLAGS=--xla_force_host_platform_device_count=4 tfapp-train --backend=jax --task=language_model --model_parallel=2

The counterpart of `get_strategy` for `--backend=jax`: `get_devices()` sets `keras.distribution.DataParallel`
over `jax.devices()` (variables replicated, the batch split over the mesh axis `batch`), or with `--model_parallel=M`
a `ModelParallel` over a (devices/M, M) mesh whose `model` axis splits the kernels (`ShardedKernels`: the task's
rules, e.g. Megatron-style for the transformer, then a generic rule for every model), and returns a `JaxDevices`
that the run reads like a strategy (`num_replicas_in_sync`, `is_chief`, `describe()`, an input context per host).
Several hosts (a TPU pod slice, or local processes): `initialize()` first, which starts JAX's distributed runtime
from `KERAS_DISTRIBUTION_JOB_ADDRESSES` / `KERAS_DISTRIBUTION_NUM_PROCESSES` / `KERAS_DISTRIBUTION_PROCESS_ID`
(on Cloud TPU VMs JAX finds them itself); on CPUs the collectives run over gloo.
"""
import dataclasses
import os
import re

import jax
import keras
import tensorflow as tf  # tf.distribute.InputContext only: which share of the data this host reads

MULTI_PROCESS_VARIABLES = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES",
                           "KERAS_DISTRIBUTION_PROCESS_ID")
HEARTBEAT_SECONDS = int(os.environ.get("TFAPP_JAX_HEARTBEAT_SECONDS", "30"))  # a silent peer counts as dead after


class ShardedKernels(keras.distribution.ModelParallel):
    """`ModelParallel` whose variable layouts come from `rules` ({regex on the variable path: axis name or None per
    dimension}, the first match whose split dimensions divide by the model axis wins; optimizer slots match too,
    their paths contain the model variable's) and, for variables no rule names, a generic rule: a `kernel` or
    `embeddings` whose last dimension divides by the model axis is split on it (a Dense/EinsumDense kernel's last
    dimension is its outputs: column-parallel). Everything else is replicated."""

    def __init__(self, device_mesh, rules=None):
        super().__init__(layout_map=keras.distribution.LayoutMap(device_mesh), batch_dim_name="batch")
        self.rules, self.model_size = dict(rules or {}), device_mesh.shape[1]

    def axes(self, path, shape):
        def divides(axes):
            return len(axes) == len(shape) and all(a is None or shape[i] % self.model_size == 0
                                                   for i, a in enumerate(axes))
        for pattern, axes in self.rules.items():
            if re.search(pattern, path) and divides(axes):
                return tuple(axes)
        generic = (None,) * (len(shape) - 1) + ("model",) if shape else ()
        if re.search(r"kernel|embeddings", path) and generic and divides(generic):
            return generic
        return (None,) * len(shape)

    def get_variable_layout(self, variable):
        if getattr(variable, "_layout", None) is not None:
            return variable._layout
        return keras.distribution.TensorLayout(self.axes(variable.path, tuple(variable.shape)), self.device_mesh)


@dataclasses.dataclass
class JaxDevices:
    distribution: object
    devices: list
    model_parallel: int = 1  # devices each model is split over (the mesh's `model` axis)

    @property
    def num_replicas_in_sync(self):
        """Data-parallel width: the global batch is split over this many groups of devices."""
        return len(self.devices) // self.model_parallel

    @property
    def is_chief(self):
        return jax.process_index() == 0

    def describe(self):
        kind = "DataParallel" if self.model_parallel == 1 else \
            f"ModelParallel (batch {self.num_replicas_in_sync} x model {self.model_parallel})"
        return f"JAX {kind} over {len(self.devices)} {self.devices[0].platform} device(s)" + (
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


def get_devices(global_batch_size, model_parallel=1, rules=None):
    """DataParallel over all JAX devices, or with `model_parallel` = M > 1 ShardedKernels over a (devices/M, M)
    mesh with axes (batch, model), set as Keras' distribution; raises ValueError when the devices or the batch do not
    split evenly."""
    devices = jax.devices()
    if len(devices) % model_parallel:
        raise ValueError(f"--model_parallel={model_parallel}: {len(devices)} JAX devices do not split into groups "
                         f"of {model_parallel}")
    data_parallel = len(devices) // model_parallel
    if global_batch_size % data_parallel:
        raise ValueError(f"--batch_size={global_batch_size} (global) is not divisible by {data_parallel} "
                         "data-parallel JAX device groups")
    if model_parallel == 1:
        distribution = keras.distribution.DataParallel(devices=devices)
    else:
        mesh = keras.distribution.DeviceMesh((data_parallel, model_parallel), ["batch", "model"], devices)
        distribution = ShardedKernels(mesh, rules)
    keras.distribution.set_distribution(distribution)
    return JaxDevices(distribution, devices, model_parallel)


def bytes_per_device(arrays, device):
    """Bytes of `arrays` (sharded or not) held on `device`."""
    return sum(shard.data.nbytes for array in arrays for shard in array.addressable_shards if shard.device == device)
