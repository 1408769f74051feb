"""The JAX engine's hot loop: blocks of K batches put on the devices once, then N steps per jitted call.

    tfapp-train --backend=jax --task=digits --model=mlp --train_steps=2000    # tfapp-train sets KERAS_BACKEND=jax

The JAX counterpart of `tfapp.loop.Trainer`, with the same few calls for `tfapp.host_loop` (`train(iterator, n)`,
`evaluate(dataset, steps)`, `reset_input()`, plus `sync_to_model()` / `reload_state()` around checkpoints). The
iterator yields *blocks* `[K, batch, ...]` of numpy arrays (`pipelines.train_dataset(blocks=True)` or `.batch(K)`);
each block goes to the devices with one `jax.device_put` (the batch axis split over the mesh's `batch` axis,
`jax.make_array_from_process_local_data` on several hosts). A step is `model.stateless_call` →
`jax.value_and_grad` → `optimizer.stateless_apply` → metric `stateless_update_state` on the batch indexed out of
the block on the device; `jit_compile="block"` runs `count` of them in one jitted `lax.fori_loop`, `True` one
jitted call per step (`tfapp.engines.jax_engine.jit_rule` picks one). Indices and counts are traced, so loops of
any length share one compiled program.
Weights, optimizer and metric state live as JAX arrays between calls (donated, never copied per step); the Keras
variables see them only when `sync_to_model()` writes them back (checkpoints, the end of a run). The next block is
fetched and put on the devices while the device still runs the current one (JAX dispatches asynchronously).
`start(iterator, n)` only dispatches a loop: the program also returns the loop's metric results and learning rate
as a few scalars, and its `result()` waits for them, so the host loop can dispatch the next loop before it waits
for this one (`tfapp.host_loop`); the devices then never wait on the host's per-loop work.
In-memory training rows (`table`, see `tfapp.engines.jax_engine.device_table`) are put on the devices once: the
blocks are then [K, batch] row indices, and each step gathers its batch on the device (no rows cross from tf.data
per step).
Evaluation reads the split once into one chunk of batches that stays on the devices, and compiles its program
ahead (`prepare_evaluate`, in a background thread while training runs): an evaluation is then one compiled call.
The loop knows nothing of tasks, files or flags.
"""
import threading
import time

import jax
import jax.numpy as jnp
import keras
import numpy as np

from tfapp import program_cache

EVAL_CHUNK = 32  # eval batches per jitted call (the last chunk is padded with zero-weight batches)
EVAL_CACHE_BYTES = 256 * 2**20  # eval chunks up to this size stay on the devices between evaluations
# XLA's options for tfapp's programs on a CPU: no YNNPACK fusions. XLA:CPU builds their pipelines at the program's
# first run, delaying the first step, and the steps ran no faster with them
# (docs/performance.md#figures-behind-the-code).
CPU_COMPILER_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}


def compiler_options():
    """XLA options for the programs of this process's devices (CPU_COMPILER_OPTIONS on a CPU), or None."""
    return dict(CPU_COMPILER_OPTIONS) if jax.devices()[0].platform == "cpu" else None


def training_kwargs(model, training):
    """{"training": training} for a model whose call() takes it; {} for one whose call() does not (a user's
    subclassed model: `stateless_call` passes its keywords on as given, unlike `model(x)`)."""
    return {"training": training} if getattr(model, "_call_has_training_arg", True) else {}


def _values(variables):
    return [variable.value for variable in variables]


def _batch(block, index):
    """Batch `index` (traced) of a block of stacked batches."""
    return jax.tree.map(lambda leaf: jax.lax.dynamic_index_in_dim(leaf, index, keepdims=False), block)


def _train_batch(inputs, index):
    """Batch `index` of a block: the block itself holds the batches, or (with a device-resident `table` of rows)
    their row indices, gathered here on the devices."""
    block, table = inputs
    selected = _batch(block, index)
    if table is None:
        return selected
    return jax.tree.map(lambda column: jnp.take(column, selected, axis=0), table)


class Loop:
    """A loop dispatched by `JaxTrainer.start`: `result()` waits for its steps and returns their mean loss, metrics
    and the learning rate of the next update; `input_wait` / `input_handover` are the seconds `start` spent on its
    blocks (see `JaxTrainer.train`)."""

    def __init__(self, summary, input_wait, input_handover, learning_rate=None):
        self._summary, self._learning_rate = summary, learning_rate
        self.input_wait, self.input_handover = input_wait, input_handover

    def result(self):
        values = {name: float(value) for name, value in jax.device_get(self._summary).items()}
        if self._learning_rate is not None:  # a callable learning rate: read at dispatch
            values["learning_rate"] = self._learning_rate
        return values


class JaxTrainer:
    """Owns the jitted train/eval functions and the training state of one model on the JAX devices."""

    def __init__(self, model, optimizer, loss_fn, metrics_fn, global_batch_size, block, jit_compile=True,
                 distribution=None, data_sharding=None, measure_input_wait=True, table=None, program_key=None):
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
        self.global_batch_size = global_batch_size  # examples per step over all devices and hosts
        self.block = block  # K: batches per block from the iterator
        self.data_sharding = data_sharding  # jax.sharding of a [K, batch, ...] block; None: the default device
        if jit_compile not in (True, "block"):
            raise ValueError(f"jit_compile={jit_compile!r}: expected True (a jitted call per step) or 'block'")
        # True: one jitted call per step (dispatched asynchronously, the batch indexed out of the block on the
        # device); "block": one jitted call per loop, a lax.fori_loop over the block. XLA on CPU runs
        # convolutions inside a loop far slower, a dense model gains from it (docs/performance.md#jax):
        # tfapp.engines.jax_engine.jit_rule chooses.
        self.jit_compile = jit_compile
        self.measure_input_wait = measure_input_wait
        self.last_input_wait = self.last_input_handover = 0.0
        self.train_loss, self.eval_loss = keras.metrics.Mean(name="loss"), keras.metrics.Mean(name="loss")
        self.train_metrics, self.eval_metrics = metrics_fn(), metrics_fn()
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        self._train_metric_objects = [self.train_loss, *self.train_metrics]
        self._eval_metric_objects = [self.eval_loss, *self.eval_metrics]
        for metric in self._eval_metric_objects:
            metric.reset_state()
        # Where the loop's summary finds the learning rate of the next update in the optimizer's state: a
        # schedule's step count, or the learning-rate variable (None: a callable, read on the host).
        self._rate_source = self._learning_rate_source(optimizer)
        # Every array handed to a compiled call has the sharding its result will have, so the second call does
        # not compile again: variables as their keras.distribution layout says, metric state replicated.
        # Without a distribution everything is committed to the default device: an uncommitted first argument
        # and a committed result would make the second call, and every new block, compile again
        # (docs/performance.md#figures-behind-the-code).
        self.distribution = distribution
        replicated = jax.sharding.NamedSharding(distribution.device_mesh.backend_mesh,
                                                jax.sharding.PartitionSpec()) if distribution else (
            jax.sharding.SingleDeviceSharding(jax.devices()[0]))
        self._default_sharding = replicated
        # table: (features, labels) of every training row, put on the devices once (replicated); the blocks are
        # then [K, batch] row indices and each step gathers its batch on the devices.
        self.table = None if table is None else jax.device_put(jax.tree.map(np.asarray, table), replicated)
        self._fresh_train_metrics = [[jax.device_put(v.value, replicated) for v in m.variables]
                                     for m in self._train_metric_objects]
        self._fresh_eval_metrics = [[jax.device_put(v.value, replicated) for v in m.variables]
                                    for m in self._eval_metric_objects]
        self._state = None
        self.reload_state()
        # Results keep the shardings of the arguments (GSPMD may otherwise choose others for sharded weights, and
        # the next call would compile again).
        summary_names = [m.name for m in self._train_metric_objects] + (["learning_rate"] if self._rate_source
                                                                          else [])
        shardings = jax.tree.map(lambda value: value.sharding, (self._state, self._fresh_train_metrics)) + (
            {name: replicated for name in summary_names},)
        eval_shardings = jax.tree.map(lambda value: value.sharding, self._fresh_eval_metrics)
        options = compiler_options()
        self._train_steps = jax.jit(self._steps_fn, donate_argnums=(0,), out_shardings=shardings,
                                    compiler_options=options)
        self._train_step = jax.jit(self._indexed_step, donate_argnums=(0,), out_shardings=shardings,
                                   compiler_options=options)
        self._eval_chunk = jax.jit(self._eval_chunk_fn, out_shardings=eval_shardings, compiler_options=options)
        self._eval_batch = jax.jit(self._eval_batch_fn, out_shardings=eval_shardings, compiler_options=options)
        self._current = self._next = None
        self._position = 0
        self._schedule = None  # (index of the step count among the optimizer's variables, the compiled schedule)
        self._program = None  # the train program, compiled ahead by the first call (see _first_program)
        # tfapp.program_cache.run_key of the run (None: not cached), and where the train program came from
        self.program_key, self.program_source = program_key, None
        # Evaluation (see prepare_evaluate): the split's chunks on the devices and their compiled program.
        self._state_spec = jax.tree.map(lambda v: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=v.sharding),
                                        self._state)
        self._eval_source = self._eval_iterator = self._eval_chunks = self._eval_program = None
        self._eval_lock = threading.Lock()  # prepare_evaluate may run in a background thread

    # -- state ------------------------------------------------------------------------------------------------
    def model_state(self):
        """(trainable, non-trainable, optimizer) values of the Keras variables, not copied."""
        model, optimizer = self.model, self.optimizer
        return (_values(model.trainable_variables), _values(model.non_trainable_variables),
                _values(optimizer.variables))

    def _placed(self, variable):
        """A copy of the variable's value with its layout's sharding: a copy, since the train call donates (frees)
        the state it is given, and the Keras variable must stay readable."""
        sharding = (self.distribution.get_variable_layout(variable).backend_layout if self.distribution
                    else self._default_sharding)
        return jax.device_put(variable.value, sharding, may_alias=False)

    def reload_state(self):
        """Copies the Keras variables (after building, a restore, or a learning-rate change) into the state."""
        model, optimizer = self.model, self.optimizer
        self._state = tuple([self._placed(v) for v in variables] for variables in (
            model.trainable_variables, model.non_trainable_variables, optimizer.variables))

    def sync_to_model(self):
        """Writes the state back into the Keras variables (before a checkpoint, an export, the end of a run)."""
        trainable, non_trainable, optimizer_values = self._state
        for variables, values in ((self.model.trainable_variables, trainable),
                                  (self.model.non_trainable_variables, non_trainable),
                                  (self.optimizer.variables, optimizer_values)):
            for variable, value in zip(variables, values):
                variable.assign(value)
        self.reload_state()  # the variables now hold the state's arrays, which the next call would donate

    @staticmethod
    def _learning_rate_source(optimizer):
        schedule = optimizer._learning_rate
        for index, variable in enumerate(optimizer.variables):
            if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
                if variable is optimizer.iterations:
                    return "schedule", index
            elif variable is schedule:
                return "variable", index
        return None

    def learning_rate(self):
        """The learning rate of the next update, from the state's step count (the Keras variables lag behind it
        until `sync_to_model`). A schedule runs as one compiled function: called eagerly, its `cond` was traced
        and its program looked up again at every call (docs/performance.md#figures-behind-the-code)."""
        schedule = self.optimizer._learning_rate
        if not isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
            return float(keras.ops.convert_to_numpy(self.optimizer.learning_rate))
        if self._schedule is None:
            index = next(i for i, v in enumerate(self.optimizer.variables) if v is self.optimizer.iterations)
            self._schedule = index, jax.jit(schedule)
        index, compiled = self._schedule
        return float(compiled(self._state[2][index]))

    # -- the compiled functions ---------------------------------------------------------------------------------
    def _loss(self, trainable, non_trainable, features, labels, weights):
        predictions, non_trainable, losses = self.model.stateless_call(
            trainable, non_trainable, features, return_losses=True, **training_kwargs(self.model, True))
        per_example = self.loss_fn(labels, predictions)
        weighted = per_example if weights is None else per_example * weights
        loss = jnp.sum(weighted) / self.global_batch_size  # the mean over the global batch, as on TF
        if losses:
            loss = loss + sum(losses)
        return loss, (predictions, non_trainable, per_example)

    def _step(self, state, metric_state, batch):
        trainable, non_trainable, optimizer_values = state
        features, labels, *weights = batch  # (features, labels) or with the data's sample weights
        weights = jnp.asarray(weights[0], jnp.float32) if weights else None
        (_, (predictions, non_trainable, per_example)), gradients = jax.value_and_grad(self._loss, has_aux=True)(
            trainable, non_trainable, features, labels, weights)
        trainable, optimizer_values = self.optimizer.stateless_apply(optimizer_values, gradients, trainable)
        weighted = {} if weights is None else {"sample_weight": weights}  # a user's metric may take none
        metric_state = [self.train_loss.stateless_update_state(metric_state[0], per_example, **weighted)] + [
            metric.stateless_update_state(values, labels, predictions, **weighted)
            for metric, values in zip(self.train_metrics, metric_state[1:])]
        return (trainable, non_trainable, optimizer_values), metric_state

    def _summary(self, state, metric_state):
        """{metric name: result, learning_rate: of the next update} as scalars: what the host reads of a loop."""
        summary = {metric.name: metric.stateless_result(values)
                   for metric, values in zip(self._train_metric_objects, metric_state)}
        if self._rate_source:
            kind, index = self._rate_source
            value = state[2][index]
            summary["learning_rate"] = jnp.asarray(
                self.optimizer._learning_rate(value) if kind == "schedule" else value, jnp.float32)
        return summary

    def _indexed_step(self, state, metric_state, inputs, index):
        state, metric_state = self._step(state, metric_state, _train_batch(inputs, index))
        return state, metric_state, self._summary(state, metric_state)

    def _steps_fn(self, state, metric_state, inputs, start, count):
        def body(i, carry):
            return self._step(*carry, _train_batch(inputs, i))
        state, metric_state = jax.lax.fori_loop(start, start + count, body, (state, metric_state))
        return state, metric_state, self._summary(state, metric_state)

    def _eval_batch_fn(self, state, metric_state, chunk, index):
        trainable, non_trainable, _ = state
        features, labels, weights = _batch(chunk, index)
        predictions, _ = self.model.stateless_call(trainable, non_trainable, features,
                                                  **training_kwargs(self.model, False))
        per_example = self.loss_fn(labels, predictions)
        return [self.eval_loss.stateless_update_state(metric_state[0], per_example, sample_weight=weights)] + [
            metric.stateless_update_state(values, labels, predictions, sample_weight=weights)
            for metric, values in zip(self.eval_metrics, metric_state[1:])]

    def _eval_chunk_fn(self, state, metric_state, chunk):
        return jax.lax.fori_loop(0, jax.tree.leaves(chunk)[0].shape[0],
                                 lambda i, metrics: self._eval_batch_fn(state, metrics, chunk, i), metric_state)

    # -- input ----------------------------------------------------------------------------------------------
    def _put(self, block):
        block = jax.tree.map(np.asarray, block)  # tf.data tensors -> numpy (no copy on CPU)
        if self.data_sharding is None:
            return jax.device_put(block, self._default_sharding)
        if jax.process_count() == 1:
            return jax.device_put(block, self.data_sharding)
        return jax.tree.map(lambda leaf: jax.make_array_from_process_local_data(self.data_sharding, leaf), block)

    def _fetch(self, iterator):
        """(the next block on the devices, seconds it took from asking to having it)."""
        start = time.perf_counter()
        block = self._put(next(iterator))
        return block, time.perf_counter() - start

    def _first_program(self, iterator):
        """(the train program compiled ahead, (first block, seconds to fetch it))): the first block is fetched in a
        background thread while the program is loaded from tfapp.program_cache, or traced and compiled from the
        blocks' shapes, not one after the other (docs/performance.md#figures-behind-the-code). One process only
        (several put their blocks together)."""
        fetched = {}

        def fetch():
            try:
                fetched["block"] = self._fetch(iterator)
            except BaseException as error:  # noqa: BLE001 - re-raised in the caller's thread
                fetched["error"] = error

        thread = threading.Thread(target=fetch, name="tfapp-first-block")
        thread.start()
        try:
            sharding = self.data_sharding or self._default_sharding
            block = jax.tree.map(lambda spec: jax.ShapeDtypeStruct(tuple(spec.shape), spec.dtype.as_numpy_dtype,
                                                                   sharding=sharding), iterator.element_spec)
            metric_state = [list(values) for values in self._fresh_train_metrics]
            function = self._train_steps if self.jit_compile == "block" else self._train_step
            args = (self._state, metric_state, (block, self.table), np.int32(0)) + (
                (np.int32(1),) if self.jit_compile == "block" else ())
            key = program_cache.program_key(self.program_key, args, setting=(
                str(self.jit_compile), self.block, self.global_batch_size, sorted((compiler_options() or {}).items())))
            program = program_cache.load(key, args) if key else None
            self.program_source = "tfapp program cache" if program is not None else "compiled (JAX's cache may hold it)"
            if program is None and key:
                program, jax_key = program_cache.compile_program(function.lower(*args))
                program_cache.save_in_background(key, program, jax_key)
            elif program is None:
                program = function.lower(*args).compile()
        finally:
            thread.join()
        if "error" in fetched:
            raise fetched["error"]
        return program, fetched["block"]

    def reset_input(self):
        """A new iterator starts at a block boundary, with nothing fetched ahead."""
        self._current = self._next = None
        self._position = 0

    # -- the host calls -----------------------------------------------------------------------------------------
    def train(self, iterator, num_steps):
        """Runs `num_steps` steps; returns the loop's mean train loss, metrics and learning rate. `last_input_wait`:
        seconds the host spent fetching blocks while nothing ran on the devices; `last_input_handover`: all seconds
        spent fetching blocks (also those overlapped with the devices' work)."""
        return self.start(iterator, num_steps).result()

    def start(self, iterator, num_steps):
        """Dispatches `num_steps` steps and returns a `Loop` without waiting for them (the next block is fetched
        meanwhile); the next `start` may come before this loop's `result()`."""
        metric_state = [list(values) for values in self._fresh_train_metrics]
        wait = handover = 0.0
        done = 0
        if self._program is None and self._next is None and jax.process_count() == 1 and \
                hasattr(iterator, "element_spec"):  # a tf.data iterator: the blocks' shapes are known ahead
            self._program, (self._next, seconds) = self._first_program(iterator)
            wait, handover = wait + seconds, handover + seconds
        # the program compiled ahead, else the jitted function of this setting (it compiles on its first call)
        program = self._program or (self._train_steps if self.jit_compile == "block" else self._train_step)
        summary = None
        while done < num_steps:
            if self._position == 0:
                if self._next is None:
                    self._next, seconds = self._fetch(iterator)
                    wait, handover = wait + seconds, handover + seconds
                self._current, self._next = self._next, None
            count = min(self.block - self._position, num_steps - done)
            if self.jit_compile == "block":
                self._state, metric_state, summary = program(self._state, metric_state, (self._current, self.table),
                                                             np.int32(self._position), np.int32(count))
            else:
                for index in range(self._position, self._position + count):
                    self._state, metric_state, summary = program(self._state, metric_state,
                                                                 (self._current, self.table), np.int32(index))
            self._position = (self._position + count) % self.block
            done += count
            if self._position == 0:  # fetch the next block while the devices run this one
                self._next, seconds = self._fetch(iterator)
                handover += seconds
        self.last_input_wait, self.last_input_handover = wait, handover
        return Loop(summary, wait, handover, None if self._rate_source else self.learning_rate())

    def _results(self, metrics, metric_state):
        results = {}
        for metric, values in zip(metrics, metric_state):
            for variable, value in zip(metric.variables, values):
                variable.assign(value)
            results[metric.name] = float(metric.result())
        return results

    def _eval_chunks_from(self, iterator, steps):
        """The eval pass as chunks on the devices: one chunk of every batch when it fits in EVAL_CACHE_BYTES
        (one compiled call per evaluation), else chunks of EVAL_CHUNK batches whose padding batches carry weight 0."""
        batches = [next(iterator) for _ in range(steps)]
        batch_bytes = sum(np.asarray(leaf).nbytes for leaf in jax.tree.leaves(batches[0]))
        size = steps if steps * batch_bytes <= EVAL_CACHE_BYTES else min(EVAL_CHUNK, steps)
        padding = (-steps) % size
        batches += [jax.tree.map(np.zeros_like, batches[0])] * padding
        chunks = [jax.tree.map(lambda *leaves: np.stack(leaves), *batches[i:i + size])
                  for i in range(0, len(batches), size)]
        return [self._put(chunk) for chunk in chunks]

    def _compile_eval(self, chunk):
        """The evaluation program for chunks shaped like `chunk`, compiled ahead (AOT) from the state's shapes."""
        metric_state = [list(values) for values in self._fresh_eval_metrics]
        if self.jit_compile == "block":
            return self._eval_chunk.lower(self._state_spec, metric_state, chunk).compile()
        return self._eval_batch.lower(self._state_spec, metric_state, chunk, np.int32(0)).compile()

    def prepare_evaluate(self, dataset, steps):
        """Reads the evaluation split once into chunks on the devices and compiles its program: in a background
        thread while training runs (as `run.train` calls it), the first evaluation then only computes. Chunks
        over EVAL_CACHE_BYTES are read again at each evaluation."""
        with self._eval_lock:
            if self._eval_source is not dataset:
                self._eval_source, self._eval_iterator = dataset, iter(dataset)
                self._eval_chunks = self._eval_program = None
            if self._eval_program is None:
                chunks = self._eval_chunks_from(self._eval_iterator, steps)
                if len(chunks) == 1:  # the whole split fits: it stays on the devices
                    self._eval_chunks = chunks
                self._eval_program = self._compile_eval(chunks[0])
                return chunks
            return self._eval_chunks or self._eval_chunks_from(self._eval_iterator, steps)

    def evaluate(self, dataset, steps):
        """Weighted eval loss and metrics over `steps` batches of a repeating dataset of (features, label,
        weight): one iterator serves every evaluation; a split that fits stays on the devices, and its compiled
        program runs it in one call (per block) or one call per batch (per step)."""
        chunks = self.prepare_evaluate(dataset, steps)
        metric_state = [list(values) for values in self._fresh_eval_metrics]
        for chunk in chunks:
            if self.jit_compile == "block":
                metric_state = self._eval_program(self._state, metric_state, chunk)
            else:
                for index in range(jax.tree.leaves(chunk)[0].shape[0]):
                    metric_state = self._eval_program(self._state, metric_state, chunk, np.int32(index))
        return self._results(self._eval_metric_objects, metric_state)
