"""The JAX engine (`--backend=jax`): devices and meshes (strategies.jax_mesh), data as blocks, `tfapp.jax_loop`'s
trainer, FLOPs from the lowered program, the SavedModel written in-process. Implements `tfapp.engines.Engine`.

    tfapp-train --backend=jax --task=digits --model=mlp            # tfapp-train sets KERAS_BACKEND=jax itself
    XLA_FLAGS=--xla_force_host_platform_device_count=2 tfapp-train --backend=jax   # two CPU "devices"

For TPU VMs whose TensorFlow has no TPU runtime (free Colab TPUs) and for TPU pods: JAX drives the devices,
TensorFlow only runs the tf.data pipeline on the host. `prepare(config)` builds the same `experiment.Experiment` as the
TensorFlow engine (same task, pipeline, model and optimizer code; `engine="jax"`), so `tfapp.training.train` and
`tfapp.host_loop` drive it unchanged: progress, evaluation, checkpoints (`tfapp.jax_checkpoints`), signals, the NaN
policy, callbacks, the loop size, FLOPs/MFU and the report. The train iterator yields blocks of K batches
(`tfapp.jax_loop`); several hosts each read their shard (`strategies.jax_mesh`). The SavedModel is written in the
training process (`tfapp.jax_export`: the task's signatures around a jax2tf-converted model); with --tflite or
several processes, `tfapp-export` writes it in a TensorFlow-backend process that restores the last checkpoint.
"""
import dataclasses
import functools
import os
import subprocess
import sys
import time

import jax
import keras
import numpy as np
import tensorflow as tf  # tf.data only: the model runs on JAX

import pipelines
from pipelines import batching
from strategies import jax_mesh
from tfapp import autotune, checkpoints, compile_cache, experiment, flops, host_memory, jax_checkpoints, jax_loop
from tfapp import precision, report
from tfapp import program_cache
from tfapp import tasks
from tfapp.config import ConfigError

NAME = "jax"
DEVICE_TABLE_BYTES = 256 * 2**20  # in-memory training rows up to this size live on the devices (see device_table)

def block_size(element_spec):
    """Batches per block for batches of `element_spec`: the limits of the in-memory blocks
    (`pipelines.batching.MAX_BLOCK` batches, `BLOCK_BYTES`), for batches that come from any source."""
    batch_bytes = sum(spec.dtype.size * int(np.prod(spec.shape)) for spec in tf.nest.flatten(element_spec))
    return int(max(1, min(batching.MAX_BLOCK, batching.BLOCK_BYTES // max(1, batch_bytes))))


def prepare(config):
    """The experiment.Experiment of a --backend=jax run; raises ValueError subclasses on bad input, writes nothing."""
    if keras.backend.backend() != "jax":
        raise ConfigError(f"--backend=jax: Keras runs on {keras.backend.backend()}; set KERAS_BACKEND=jax before "
                          "Keras is imported (tfapp-train does this itself)")
    task = tasks.get_task(config.task).for_model(config.model)
    startup = {}
    with experiment.timed(startup, "strategy_s"):
        jax_mesh.initialize()
        try:
            devices = jax_mesh.get_devices(config.batch_size, config.model_parallel, task.layout_rules)
        except ValueError as error:
            raise ConfigError(str(error)) from None
    model_dir, resuming = experiment.resolve_run_dir(config)
    config = dataclasses.replace(config, model_dir=model_dir)
    compile_cache.enable_jax()
    if devices.devices[0].platform == "cpu" and jax.local_device_count() == 1:
        # XLA:CPU scratch reused between calls, not faulted in anew. Not on a CPU split into several devices (a
        # test set-up): their all-reduce can deadlock in XLA:CPU's thread pool, and no run there measured it.
        host_memory.keep_freed_memory()
    with experiment.timed(startup, "data_load_s"):
        source = experiment.load_source(config, task)
    keras.utils.set_random_seed(config.seed)
    preprocess, augment = task.preprocessor(source.spec), experiment.augmenter(config, task, source)
    context = devices.input_context()
    arrays = (source.arrays or {}).get("train") if task.vectorized_preprocess else None
    blocks_from_arrays = arrays is not None
    table = device_table(arrays, preprocess, augment)

    def make_train_data(skip_steps):
        if table is not None:
            return pipelines.index_blocks(arrays, config.batch_size, config.seed, context, skip_steps)
        dataset = pipelines.train_dataset(
            source.splits["train"], preprocess, config.batch_size, config.seed, context, cache=config.cache,
            vectorized=task.vectorized_preprocess, arrays=arrays, skip_steps=skip_steps, blocks=blocks_from_arrays,
            augment=augment)
        if blocks_from_arrays:
            return dataset
        return dataset.batch(block_size(dataset.element_spec), drop_remainder=True).prefetch(2)

    def eval_steps_of(split):
        return pipelines.eval_steps(source.num_examples[split], config.batch_size, context.num_input_pipelines)

    def make_eval_data(split):
        """(the split's repeating (features, label, weight) batches, batches per pass)."""
        return (pipelines.eval_dataset(source.splits[split], preprocess, config.batch_size, source.num_examples[split],
                                       context, vectorized=task.vectorized_preprocess, repeat=True),
                eval_steps_of(split))

    # The validation dataset is built on first use, in the run's background thread (Experiment.validation_data)
    eval_data, eval_steps = (lambda: make_eval_data("validation")[0]), eval_steps_of("validation")
    from_start = make_train_data(0)  # built once (a tf.data pipeline traces its map functions): its spec, and the
    # train data of a run that starts at step 0
    block = int(tf.nest.flatten(from_start.element_spec)[0].shape[0])  # batches per block
    first = devices.devices[0]

    def candidate_trainer(candidate):  # --mixed_precision=auto: a model in one precision, as the run would train it
        model = experiment.build_model(candidate, task, source.spec)
        optimizer = experiment.build_optimizer(candidate, model, task)
        optimizer.build(model.trainable_variables)
        return jax_loop.JaxTrainer(model, optimizer, task.loss(), task.metrics, config.batch_size, block,
                                   jit_rule(config.jit_compile, model, first.platform)[0], devices.distribution,
                                   devices.block_sharding(), table=table)

    capability = getattr(first, "compute_capability", None)  # "9.0" on CUDA devices
    with experiment.timed(startup, "precision_s"):
        config, precision_record = experiment.choose_precision(
            config, "jax", report.device_description(devices), precision.native(
                "jax", first.platform, tuple(int(p) for p in capability.split(".")) if capability else None),
            candidate_trainer, make_train_data, resuming, first.platform, context.num_input_pipelines,
            devices.num_replicas_in_sync)
    with experiment.timed(startup, "model_build_s"):
        model = experiment.build_model(config, task, source.spec)
        optimizer = experiment.build_optimizer(config, model, task)
        optimizer.build(model.trainable_variables)
    resumed_from = checkpoints.latest(model_dir) if resuming else None
    if resumed_from:
        jax_checkpoints.Manager(model_dir, model, optimizer).restore(resumed_from)
    if devices.is_chief:
        checkpoints.check_writable(model_dir)
    start_step = checkpoints.batches_done(optimizer)
    return experiment.Experiment(
        config=config, task=task, strategy=devices, source=source, model=model, optimizer=optimizer,
        train_data=from_start if start_step == 0 else make_train_data(start_step), eval_data=eval_data, is_chief=devices.is_chief,
        make_train_data=make_train_data, resumed_from=resumed_from, block=block, startup=startup,
        eval_steps=eval_steps, engine=NAME, train_table=table, precision=precision_record,
        make_test_data=lambda: make_eval_data("test"))


def device_table(arrays, preprocess, augment):
    """The preprocessed training rows to keep on the devices (each step then gathers its batch there, and tf.data
    hands over only row indices), or None: rows not in memory, random augmentation (drawn per step in the
    pipeline), several processes (each host reads its own shard), or rows over DEVICE_TABLE_BYTES."""
    if arrays is None or augment is not None or jax.process_count() > 1:
        return None
    # The size from a sample first: the language model's windows of every position would be ~0.5 GB, computed and
    # thrown away at every start (docs/performance.md#accelerator).
    count, sample = len(arrays["y"]), 64
    rows = pipelines.preprocess_rows(tf.nest.map_structure(lambda a: np.asarray(a)[:sample], arrays), preprocess)
    if sum(leaf.nbytes for leaf in tf.nest.flatten(rows)) * count / min(count, sample) > DEVICE_TABLE_BYTES:
        return None
    return pipelines.preprocess_rows(arrays, preprocess)


def _has_convolutions(model):
    return any(isinstance(layer, keras.layers.Conv1D | keras.layers.Conv2D | keras.layers.Conv3D)
               for layer in model._flatten_layers())


def jit_rule(choice, model, platform):
    """(the JAX loop's setting for `--jit_compile=choice`, why): one jitted call per loop ("block": a
    lax.fori_loop over the block's batches), except for convolutions on a CPU, which XLA runs several times slower
    inside a loop (docs/performance.md#jax): one jitted call per step (True). Every step is compiled either way, so
    nothing is measured: the program compiles once per run."""
    if choice in ("true", "block"):
        return {"true": True, "block": "block"}[choice], "set by --jit_compile"
    if platform == "cpu" and _has_convolutions(model):
        return True, "rule: convolutions on a CPU run ~30x slower inside an XLA loop: one jitted call per step"
    return "block", "rule: one jitted call per loop (a lax.fori_loop over the block's batches)"


def choose_trainer(experiment, on_traced=None):
    """(JaxTrainer, steps per loop, the autotune record for report.json) without measuring anything: the XLA
    setting by `jit_rule`, the loop size from --steps_per_loop, else fixed at 16 where every run or process must
    loop alike (--deterministic, several processes), else from the run's own first loops
    (autotune.LoopSizeFromSpeed). `on_traced` is not used: the run's background work starts after the first loop
    (the program is compiled ahead, in the first call)."""
    config = experiment.config
    jit, reason = jit_rule(config.jit_compile, experiment.model, experiment.strategy.devices[0].platform)
    if config.steps_per_loop != "auto":
        steps_per_loop, loops = int(config.steps_per_loop), "set by --steps_per_loop"
    elif config.deterministic or experiment.strategy.input_context().num_input_pipelines > 1:
        steps_per_loop, loops = 16, "16: every run (--deterministic) or process loops alike"
    else:
        steps_per_loop, loops = autotune.LoopSizeFromSpeed(), (
            f"from the run's first loops: the largest of {autotune.STEPS_PER_LOOP_CANDIDATES} lasting at most "
            f"{autotune.LOOP_SECONDS} s")
    return make_trainer(experiment, jit), steps_per_loop, {
        "source": "rule", "reason": f"{reason}; steps per loop {loops}",
        "choice": {"jit_compile": jit, "steps_per_loop": getattr(steps_per_loop, "size", steps_per_loop)}}


def make_trainer(experiment, jit_compile):
    config, task = experiment.config, experiment.task
    return jax_loop.JaxTrainer(experiment.model, experiment.optimizer, task.loss(), task.metrics,
                               config.batch_size, experiment.block, jit_compile, experiment.strategy.distribution,
                               experiment.strategy.block_sharding(),
                               measure_input_wait=not config.deterministic, table=experiment.train_table,
                               program_key=program_cache.run_key(config, experiment.source.spec))


def count_loss_gradient_flops(model, loss_fn, global_batch_size, batch):
    """XLA's cost analysis of the *lowered* (not compiled) forward + backward pass of `model` on `batch`
    ((features, labels[, sample weights]) as jax.ShapeDtypeStructs): a count of the program, the same on every
    backend (a compiled GPU program hides its cuBLAS/cuDNN calls from the analysis: docs/performance.md#accelerator).
    The optimizer is not counted, as on TensorFlow."""
    def loss(trainable, non_trainable, features, labels):
        predictions, _ = model.stateless_call(trainable, non_trainable, features,
                                             **jax_loop.training_kwargs(model, True))
        return jax.numpy.sum(loss_fn(labels, predictions)) / global_batch_size

    def abstract(variables):
        return [jax.ShapeDtypeStruct(v.shape, v.dtype) for v in variables]

    lowered = jax.jit(jax.grad(loss)).lower(abstract(model.trainable_variables),
                                            abstract(model.non_trainable_variables), *batch[:2])
    analysis = lowered.cost_analysis()
    analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
    return float(analysis.get("flops", 0.0))


def _step_flops(experiment, trainer):
    """count_loss_gradient_flops on one global batch of the run's training data."""
    block_spec = experiment.train_data.element_spec
    processes = jax.process_count()

    def one_batch(spec):  # [K, per-host batch, ...] -> [global batch, ...]
        return jax.ShapeDtypeStruct((spec.shape[1] * processes, *spec.shape[2:]), spec.dtype.as_numpy_dtype)

    batch = tf.nest.map_structure(one_batch, block_spec)
    if trainer.table is not None:  # the block holds row indices: a batch has the table's rows
        rows = batch.shape[0]
        batch = jax.tree.map(lambda column: jax.ShapeDtypeStruct((rows, *column.shape[1:]), column.dtype),
                             trainer.table)
    return count_loss_gradient_flops(experiment.model, trainer.loss_fn, experiment.config.batch_size, batch)


def _measure_peak(dtype, size, seconds):
    """Square-matmul FLOP/s of a jitted chain of matmuls in `dtype` on the first JAX device."""
    a = jax.random.uniform(jax.random.key(0), (size, size)).astype(dtype.as_numpy_dtype)

    @functools.partial(jax.jit, static_argnums=1)
    def matmuls(x, n):
        return jax.lax.fori_loop(0, n, lambda _, y: (y @ a) * (1.0 / size), x)

    matmuls(a, 1).block_until_ready()
    n, elapsed = 1, 0.0
    while elapsed < seconds:
        n *= 2
        matmuls(a, n).block_until_ready()  # compile outside the timing
        start = time.perf_counter()
        matmuls(a, n).block_until_ready()
        elapsed = time.perf_counter() - start
    return 2.0 * size ** 3 * n / elapsed


def step_flops(experiment, trainer):
    """{"flops_per_step", "flops_method"} on the JAX engine."""
    return {"flops_per_step": _step_flops(experiment, trainer),
            "flops_method": "XLA cost analysis of the lowered (not compiled) forward+backward program on one "
                            "global batch (optimizer not counted)"}


def device_peak(experiment):
    """{"peak", "peak_method"} of all the run's JAX devices (see tfapp.flops.device_peak)."""
    return report.peak_of_devices(experiment, lambda dtype, kind, key: flops.device_peak(
        dtype, kind, f"jax|{key}", measure=_measure_peak))


def sharding_report(experiment):
    """report.json["model_parallel"] of a --model_parallel run: the mesh, which model variables are split, and the
    parameter and optimizer bytes on one device against their whole size; None without model parallelism."""
    devices = experiment.strategy
    if devices.model_parallel == 1:
        return None
    model_variables, optimizer_variables = experiment.model.variables, experiment.optimizer.variables
    first = devices.devices[0]
    return {"mesh": {"batch": devices.num_replicas_in_sync, "model": devices.model_parallel},
            "sharded_variables": [v.path for v in model_variables
                                  if "model" in devices.distribution.axes(v.path, tuple(v.shape))],
            "parameter_bytes": sum(v.value.nbytes for v in model_variables),
            "parameter_bytes_per_device": jax_mesh.bytes_per_device([v.value for v in model_variables], first),
            "optimizer_bytes": sum(v.value.nbytes for v in optimizer_variables),
            "optimizer_bytes_per_device": jax_mesh.bytes_per_device([v.value for v in optimizer_variables], first)}


def exports_in_process(experiment):
    """Whether this run's SavedModel is written in the training process (tfapp.jax_export): not for --tflite
    (TFLite cannot run the XlaCallModule op the program travels in) nor over several processes (the weights are
    not all on one host)."""
    return not experiment.config.tflite and jax.process_count() == 1


def export_preparer(experiment):
    """tfapp.jax_export.PreparedExport of the run's model and its task's signatures (for a background thread), where
    the chief exports in-process; else None."""
    if not (experiment.config.export and experiment.is_chief and exports_in_process(experiment)):
        return None

    def prepare():
        from tfapp import jax_export
        return jax_export.PreparedExport(experiment.model, experiment.task.serving, experiment.source.spec)
    return prepare


def write_export(experiment, prepared, write_dir):
    """(export path, tflite path or None): written in-process from `prepared` (a future of export_preparer's
    function), else by `tfapp-export` in a TensorFlow-backend process that restores the run's last checkpoint;
    (None, None) on workers but the chief or without --export."""
    if not (experiment.config.export and experiment.is_chief):
        return None, None
    if prepared is not None:
        try:
            return prepared.result().write(experiment.model, report.join(write_dir, "export")), None
        except Exception as error:  # noqa: BLE001 - jax2tf lacks a conversion: the TensorFlow process still exports
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
            print(f"tfapp-train: warning: in-process export failed ({type(error).__name__}: {reason}); "
                  "exporting in a TensorFlow process instead", file=sys.stderr)
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    command = [sys.executable, "-m", "tfapp.cli.export", f"--write_dir={write_dir}"]
    out = subprocess.run(command + (["--tflite"] if experiment.config.tflite else []), env=env,
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"export after the JAX run failed: {(out.stderr.strip().splitlines() or [''])[-1]}")
    paths = out.stdout.strip().splitlines()[-1].removeprefix("exported ").split(" and ")
    return paths[0], paths[1] if len(paths) > 1 else None


def report_extras(experiment):
    """report.json's JAX keys: the version, model parallelism, the training rows kept on the devices (bytes), and
    the host malloc setting (tfapp.host_memory; None: glibc's defaults)."""
    table = experiment.train_table
    return {"jax_version": jax.__version__, "model_parallel": sharding_report(experiment),
            "rows_on_devices_bytes": sum(leaf.nbytes for leaf in tf.nest.flatten(table)) if table else None,
            "host_malloc": host_memory.current()}
