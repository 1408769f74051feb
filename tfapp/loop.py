"""The hot loop: N optimizer steps per host round-trip, inside one tf.function, on any tf.distribute strategy.

    python -c "import tfapp.run as r, tfapp.config as c; r.run(c.Config(steps_per_loop=16).resolved())"

`Trainer.train(iterator, n)` runs `strategy.run(step, next(iterator))` n times in one call (a `tf.while_loop`,
traced without autograph); `n` is a tensor, so a shorter last loop does not retrace. The per-replica step
averages the per-example loss over the *global* batch (`tf.nn.compute_average_loss`), so the gradients summed
across replicas by the optimizer equal the single-device gradient. Metrics are Keras metrics with on-read
variables: reading them sums over replicas.
Three input paths: *block* (one replica, in-memory arrays: one next() per K batches, sliced per step from
variables), *overlap* (one replica otherwise: the next batch is fetched while the step runs) and *plain* (several
replicas: next() then step). All three give the same batches in the same order; call `reset_input()` whenever a
new iterator starts. XLA: `jit_compile=True` compiles the per-replica step; `jit_compile="block"` (block path
only, else it means True) compiles all the steps a block has left into one XLA program, a while loop slicing its
batches out of the block: on the benchmark MLP that removes ~85 µs of XLA launch per ~0.5 ms step, but XLA on
this CPU runs convolutions inside a while loop ~35× slower, so autotune measures it like any other candidate.
The loop knows nothing of tasks, files or flags.
"""
import threading

import keras
import tensorflow as tf


def _results(loss_metric, metrics):
    return {m.name: float(m.result()) for m in [loss_metric, *metrics]}


class Trainer:
    """Owns the compiled train/eval functions for one model on one strategy."""

    def __init__(self, strategy, model, optimizer, loss_fn, metrics_fn, global_batch_size, jit_compile=False,
                 measure_input_wait=True, block=None, overlap_input=None):
        self.strategy = strategy
        self.model = model
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.global_batch_size = global_batch_size  # examples per step, summed over all replicas and workers
        if jit_compile not in (False, True, "block"):
            raise ValueError(f"jit_compile={jit_compile!r}: expected False, True or 'block'")
        self.jit_compile = jit_compile if block else bool(jit_compile)  # "block" needs blocks
        # tf.timestamp is refused under op determinism: then input wait is not measured (reported as None).
        self.measure_input_wait = measure_input_wait
        self.last_input_wait = self.last_input_handover = 0.0
        # block=K: the iterator yields blocks of K batches ([K, batch, ...]); one next() per K steps, the block
        # kept in variables and sliced per step (one replica only). The position survives between calls.
        self.block = block
        self._position = tf.Variable(0, dtype=tf.int32, trainable=False) if block else None
        self._block_variables = None
        # overlap_input (default: one replica, no blocks): the next batch is fetched while the step runs and kept
        # in variables between calls, so next()'s latency (0.1-0.6 ms here) leaves the critical path.
        if overlap_input is None:
            overlap_input = not block and strategy.num_replicas_in_sync == 1
        self.overlap_input = overlap_input
        self._pending, self._pending_valid = None, False
        with strategy.scope():
            self.train_loss = keras.metrics.Mean(name="loss")
            self.eval_loss = keras.metrics.Mean(name="loss")
            self.train_metrics = metrics_fn()
            self.eval_metrics = metrics_fn()
            # Create the optimizer's slots now: variables created lazily inside the multi-step tf.function under
            # MirroredStrategy fail with "You must feed a value for placeholder tensor" (cf. keras#19246), and
            # XLA cannot create variables at all.
            if not optimizer.built:
                optimizer.build(model.trainable_variables)
        # XLA applies to the per-replica step, or with blocks to the steps over one block; the loop around it that
        # calls next() stays a plain tf.function (iterators do not compile).
        # The step and the loop are written without autograph (tensor control flow is tf.while_loop / tf.cond):
        # converting them was about half of the first loop's trace (digits/cnn: 2.1-2.5 s -> 0.9-1.3 s, 2-core CPU). The
        # XLA block loop and the evaluation loops (traced in the background) keep autograph.
        self._step = (tf.function(self._replica_step, jit_compile=True, autograph=False) if self.jit_compile
                      else self._replica_step)
        self._block_steps = (tf.function(self._block_steps_fn, jit_compile=True) if self.jit_compile == "block"
                             else None)
        self._train_loop = (tf.function(self._compiled_block_loop_fn) if self._block_steps is not None
                            else tf.function(self._train_loop_fn, autograph=False))
        # Under XLA the forward pass compiles too (the language model's: 21 against 41 ms per batch, 2-core CPU);
        # eval batches are padded to one shape, so it compiles once.
        self._eval_step_fn = (tf.function(self._eval_step, jit_compile=True, autograph=False) if self.jit_compile
                              else self._eval_step)
        self._eval_loop = tf.function(self._eval_loop_fn)
        self._eval_steps = tf.function(self._eval_steps_fn)
        self._eval_source = self._eval_iterator = None
        # Called once, after the train loop's first trace and before its first run (when XLA compiles the step):
        # background work started then overlaps the compile instead of the loops.
        self.on_traced = None
        self._eval_lock = threading.Lock()  # prepare_evaluate (a background thread) and evaluate share the iterator

    def _replica_step(self, features, labels):
        with tf.GradientTape() as tape:
            predictions = self.model(features, training=True)
            per_example = self.loss_fn(labels, predictions)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=self.global_batch_size)
            if self.model.losses:  # regularisers: scaled by 1 / replicas so the summed gradient is right
                loss += tf.nn.scale_regularization_loss(tf.add_n(self.model.losses))
            scaled_loss = self.optimizer.scale_loss(loss)  # float16 loss scaling; identity otherwise
        variables = self.model.trainable_variables
        gradients = tape.gradient(scaled_loss, variables)
        self.optimizer.apply_gradients(zip(gradients, variables))
        self.train_loss.update_state(per_example)
        for metric in self.train_metrics:
            metric.update_state(labels, predictions)
        return loss

    def _timed_next(self, iterator):
        """(next(iterator), seconds blocked in it): the time the input pipeline kept the loop waiting."""
        if not self.measure_input_wait:
            return next(iterator), tf.constant(0.0, tf.float64)
        start = tf.timestamp()
        with tf.control_dependencies([start]):
            batch = next(iterator)
        with tf.control_dependencies(tf.nest.flatten(batch, expand_composites=True)):
            return batch, tf.timestamp() - start

    def _next_batch(self, iterator):
        """(batch, seconds blocked in next(), or None when that is the whole hand-over). Block mode: a next()
        every `block` steps, else a slice."""
        if not self.block:
            return next(iterator), None

        def fetch():
            block, wait = self._timed_next(iterator)
            stored = [variable.assign(group) for variable, group in zip(self._block_variables, self._grouped(block))]
            with tf.control_dependencies(stored):
                return tf.identity(wait)

        wait = tf.cond(tf.equal(self._position, 0), fetch, lambda: tf.constant(0.0, tf.float64))
        batch = self._block_batch(self._block_variables, self._position)  # reads after the cond's stores
        self._position.assign((self._position + 1) % self.block)
        return batch, wait

    def _grouped(self, block):
        """The block's leaves stacked per (dtype, shape) group on axis 1 (a lone leaf only gains an axis)."""
        leaves = tf.nest.flatten(block)
        return [tf.expand_dims(leaves[members[0]], 1) if len(members) == 1 else
                tf.stack([leaves[i] for i in members], axis=1) for members in self._block_groups]

    def _block_batch(self, groups, index):
        """Batch `index` of a block held as grouped tensors or variables."""
        leaves = [None] * len(tf.nest.flatten(self._block_spec))
        for group, members in zip(groups, self._block_groups):
            # gather, not group[index]: XLA compiles a strided slice again for every start it sees.
            for i, value in zip(members, tf.unstack(tf.gather(group, index), num=len(members))):
                leaves[i] = value
        return tf.nest.pack_sequence_as(self._block_spec, leaves)

    def _block_steps_fn(self, groups, start, count):
        """XLA: `count` steps on batches start, start+1, … of a block."""
        # A while loop, not `for … in tf.range(count)`: XLA would take a range's limit as a compile-time constant
        # and compile again for every count.
        i = tf.constant(0)
        while i < count:
            self._replica_step(*self._block_batch(groups, start + i))
            i += 1

    def _compiled_block_loop_fn(self, iterator, num_steps):
        """The block path with XLA: per block, one next() (if the block is used up) and one XLA call for the
        steps left in it. A block used up within this call goes straight from next() to XLA; only a block
        that a later call continues is stored in the variables. Wait and hand-over are both the time blocked in
        next(): slicing is inside XLA."""
        times = tf.zeros([2], tf.float64)
        done = tf.constant(0)
        while done < num_steps:
            count = tf.minimum(self.block - self._position, num_steps - done)
            if self._position == 0:
                block, wait = self._timed_next(iterator)
                groups = self._grouped(block)
                if count < self.block:
                    for variable, group in zip(self._block_variables, groups):
                        variable.assign(group)
            else:
                wait = tf.constant(0.0, tf.float64)
                groups = [variable.read_value() for variable in self._block_variables]
            self.strategy.run(self._block_steps, args=(groups, self._position.read_value(), count))
            self._position.assign((self._position + count) % self.block)
            done += count
            times += tf.stack([wait, wait])
        return times

    def _make_block_variables(self, spec):
        """One variable per (dtype, shape) group of the block's leaves, stacked on axis 1: a 10-column table is
        sliced with one read, one slice and one unstack per step instead of ten of each."""
        self._block_spec = spec
        specs, groups = tf.nest.flatten(spec), {}
        for i, leaf in enumerate(specs):
            groups.setdefault((leaf.dtype, tuple(leaf.shape)), []).append(i)
        self._block_groups = list(groups.values())
        self._block_variables = [
            tf.Variable(tf.zeros([self.block, len(members), *specs[members[0]].shape[1:]], specs[members[0]].dtype),
                        trainable=False) for members in self._block_groups]

    def learning_rate(self):
        """The learning rate of the next update."""
        return float(keras.ops.convert_to_numpy(self.optimizer.learning_rate))

    def reload_state(self):
        """Nothing to do: this engine trains the Keras variables themselves (the JAX engine keeps a copy)."""

    def sync_to_model(self):
        """Nothing to do: the Keras variables are the state (see reload_state)."""

    def reset_input(self):
        """A new iterator starts at a block boundary, with nothing fetched ahead."""
        if self.block:
            self._position.assign(0)
        self._pending_valid = False

    def _fetch_ahead(self, iterator):
        """Eagerly, before a call: the first batch of a new iterator into the pending variables."""
        leaves = tf.nest.flatten(next(iterator))
        if self._pending is None:
            self._pending = [tf.Variable(leaf, trainable=False) for leaf in leaves]
        else:
            for variable, leaf in zip(self._pending, leaves):
                variable.assign(leaf)
        self._pending_valid = True

    def _overlapped_step(self, iterator):
        """Runs the step on the pending batch while next() fetches the following one into the pending
        variables; returns the seconds the fetch outlasted the step (the loop waited for input)."""
        batch = tf.nest.pack_sequence_as(self._pending_spec, [variable.read_value() for variable in self._pending])
        with tf.control_dependencies(tf.nest.flatten(batch)):
            upcoming = tf.nest.flatten(next(iterator))
        stored = [variable.assign(leaf) for variable, leaf in zip(self._pending, upcoming)]
        loss = self.strategy.run(self._step, args=batch)
        if not self.measure_input_wait:
            return tf.constant(0.0, tf.float64)
        # The step's timestamp first: timestamps may run in program order, and then the fetch's is never earlier.
        with tf.control_dependencies([loss]):
            step_done = tf.timestamp()
        with tf.control_dependencies(stored):
            fetch_done = tf.timestamp()
        return tf.maximum(fetch_done - step_done, 0.0)

    def _train_loop_fn(self, iterator, num_steps):
        """Returns [seconds blocked in next(iterator), seconds from asking for a batch to having it], summed over
        the steps; the second also counts slicing a batch out of a block. Traced without autograph: the Python
        branches below are on the trainer's fixed settings, the loop over steps is a tf.while_loop."""

        def one_step(i, times):
            if self.overlap_input:
                wait = self._overlapped_step(iterator)
                times += tf.stack([wait, wait])
            elif self.measure_input_wait:
                start = tf.timestamp()
                with tf.control_dependencies([start]):
                    batch, wait = self._next_batch(iterator)
                with tf.control_dependencies(tf.nest.flatten(batch, expand_composites=True)):
                    handover = tf.timestamp() - start
                    times += tf.stack([handover if wait is None else wait, handover])
                self.strategy.run(self._step, args=batch)
            else:
                batch, _ = self._next_batch(iterator)
                self.strategy.run(self._step, args=batch)
            return i + 1, times

        _, times = tf.while_loop(lambda i, _: i < num_steps, one_step, (tf.constant(0), tf.zeros([2], tf.float64)))
        return times

    def _eval_step(self, features, labels, weights):
        predictions = self.model(features, training=False)
        self.eval_loss.update_state(self.loss_fn(labels, predictions), sample_weight=weights)
        for metric in self.eval_metrics:
            metric.update_state(labels, predictions, sample_weight=weights)

    def _eval_loop_fn(self, dataset):
        for features, labels, weights in dataset:
            self.strategy.run(self._eval_step_fn, args=(features, labels, weights))

    def _eval_steps_fn(self, iterator, num_steps):
        for _ in tf.range(num_steps):
            self.strategy.run(self._eval_step_fn, args=next(iterator))

    def train(self, iterator, num_steps):
        """Runs `num_steps` optimizer steps in one call; returns the mean train loss and metrics over them.

        `self.last_input_wait` holds the seconds this call waited for the input pipeline (blocked in `next()`),
        `self.last_input_handover` the seconds from asking for each batch to having it (wait + block slicing)."""
        for metric in [self.train_loss, *self.train_metrics]:
            metric.reset_state()
        if self.block and self._block_variables is None:
            self._make_block_variables(iterator.element_spec)
        if self.overlap_input and self._pending is None:
            self._pending_spec = iterator.element_spec  # composite batches (ragged, sparse) are not held ahead
            self.overlap_input = all(isinstance(s, tf.TensorSpec) for s in tf.nest.flatten(self._pending_spec))
        if self.overlap_input and not self._pending_valid:
            self._fetch_ahead(iterator)
        steps = tf.constant(num_steps, tf.int32)
        if self.on_traced is not None:
            self._train_loop.get_concrete_function(iterator, steps)
            on_traced, self.on_traced = self.on_traced, None
            on_traced()
        self.last_input_wait, self.last_input_handover = (float(t) for t in self._train_loop(iterator, steps))
        return _results(self.train_loss, self.train_metrics)

    def _eval_iterator_for(self, dataset):
        with self._eval_lock:
            if self._eval_source is not dataset:
                self._eval_source, self._eval_iterator = dataset, iter(dataset)
            return self._eval_iterator

    def prepare_evaluate(self, dataset, steps=None):
        """Traces the evaluation function ahead (for a background thread while training runs: the first
        evaluation then finds it traced; digits/cnn ~0.4 s on a 2-core CPU). Runs nothing."""
        if steps is None:
            self._eval_loop.get_concrete_function(dataset)
        else:
            self._eval_steps.get_concrete_function(self._eval_iterator_for(dataset), tf.TensorSpec([], tf.int32))

    def evaluate(self, dataset, steps=None):
        """One pass over a distributed eval dataset of (features, label, weight); weighted loss and metrics.
        `steps`: the dataset repeats and one pass is this many batches: one iterator serves every evaluation
        (digits/mlp: 24.3 ms per evaluation with a new iterator each time, 1.3 ms with one)."""
        for metric in [self.eval_loss, *self.eval_metrics]:
            metric.reset_state()
        if steps is None:
            self._eval_loop(dataset)
        else:
            self._eval_steps(self._eval_iterator_for(dataset), tf.constant(steps, tf.int32))
        return _results(self.eval_loss, self.eval_metrics)
