"""The hot loop: N optimizer steps per host round-trip, inside one tf.function, on any tf.distribute strategy.

    python -c "import tfapp.run as r, tfapp.config as c; r.run(c.Config(steps_per_loop=16).resolved())"

`Trainer.train(iterator, n)` runs `strategy.run(step, next(iterator))` n times in one call (a `tf.while_loop`,
traced without autograph); `n` is a tensor, so a shorter last loop does not retrace. The per-replica step
averages the per-example loss over the *global* batch (`tf.nn.compute_average_loss`), so the gradients summed
across replicas by the optimizer equal the single-device gradient. Metrics are Keras metrics with on-read
variables: reading them sums over replicas.
Three input paths, each a feeder of its own (`tfapp.feeders`): *block* (one replica, in-memory arrays: one next()
per K batches, sliced per step from variables), *overlap* (one replica otherwise: the next batch is fetched while
the step runs) and *plain* (several replicas: next() then step). All three give the same batches in the same
order; call `reset_input()` whenever a new iterator starts. XLA: `jit_compile=True` compiles the per-replica step; `jit_compile="block"` (block path
only, else it means True) compiles all the steps a block has left into one XLA program, a while loop slicing its
batches out of the block (the launch per step goes; XLA inside a while loop is slower for some models, e.g.
convolutions on a CPU: docs/performance.md), so autotune measures it like any other candidate.
The loop knows nothing of tasks, files or flags.
"""
import threading

import keras
import tensorflow as tf

from tfapp import feeders


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
        # block=K: the iterator yields blocks of K batches ([K, batch, ...]) (one replica only); overlap_input
        # (default: one replica, no blocks): the next batch fetched while the step runs. See tfapp.feeders.
        self.block = block
        if overlap_input is None:
            overlap_input = not block and strategy.num_replicas_in_sync == 1
        self.feeder = (feeders.BlockFeeder(block, measure_input_wait) if block else
                       feeders.OverlapFeeder(measure_input_wait) if overlap_input else feeders.PlainFeeder())
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
        # converting them was about half of the first loop's trace. The XLA block loop and the evaluation loops
        # (traced in the background) keep autograph.
        self._step = (tf.function(self._replica_step, jit_compile=True, autograph=False) if self.jit_compile
                      else self._replica_step)
        self._block_steps = (tf.function(self._block_steps_fn, jit_compile=True) if self.jit_compile == "block"
                             else None)
        self._train_loop = (tf.function(self._compiled_block_loop_fn) if self._block_steps is not None
                            else tf.function(self._train_loop_fn, autograph=False))
        # Under XLA the forward pass compiles too (eval batches are padded to one shape, so it compiles once).
        self._eval_step_fn = (tf.function(self._eval_step, jit_compile=True, autograph=False) if self.jit_compile
                              else self._eval_step)
        self._eval_loop = tf.function(self._eval_loop_fn)
        self._eval_steps = tf.function(self._eval_steps_fn)
        self._eval_source = self._eval_iterator = None
        # Called once, after the train loop's first trace and before its first run (when XLA compiles the step):
        # background work started then overlaps the compile instead of the loops.
        self.on_traced = None
        self._eval_lock = threading.Lock()  # prepare_evaluate (a background thread) and evaluate share the iterator

    def _replica_step(self, features, labels, weights=None):
        """One optimizer step on one replica's batch; `weights`: the data's per-example sample weights (the loss is
        then sum(loss × weight) / global batch, as Keras `fit` computes it; metrics are weighted means)."""
        if weights is not None:
            weights = tf.cast(weights, tf.float32)
        with tf.GradientTape() as tape:
            predictions = self.model(features, training=True)
            per_example = self.loss_fn(labels, predictions)
            loss = tf.nn.compute_average_loss(per_example, sample_weight=weights,
                                              global_batch_size=self.global_batch_size)
            if self.model.losses:  # regularisers: scaled by 1 / replicas so the summed gradient is right
                loss += tf.nn.scale_regularization_loss(tf.add_n(self.model.losses))
            scaled_loss = self.optimizer.scale_loss(loss)  # float16 loss scaling; identity otherwise
        variables = self.model.trainable_variables
        gradients = tape.gradient(scaled_loss, variables)
        self.optimizer.apply_gradients(zip(gradients, variables))
        weighted = {} if weights is None else {"sample_weight": weights}  # a user's metric may take none
        self.train_loss.update_state(per_example, **weighted)
        for metric in self.train_metrics:
            metric.update_state(labels, predictions, **weighted)
        return loss

    @property
    def overlap_input(self):
        """Whether the next batch is fetched while the step runs (tfapp.feeders.OverlapFeeder)."""
        return self.feeder.overlaps

    def _block_steps_fn(self, groups, start, count):
        """XLA: `count` steps on batches start, start+1, … of a block."""
        # A while loop, not `for … in tf.range(count)`: XLA would take a range's limit as a compile-time constant
        # and compile again for every count.
        i = tf.constant(0)
        while i < count:
            self._replica_step(*self.feeder.batch_of(groups, start + i))
            i += 1

    def _compiled_block_loop_fn(self, iterator, num_steps):
        """The block path with XLA: per block, one next() (if the block is used up) and one XLA call for the
        steps left in it. A block used up within this call goes straight from next() to XLA; only a block
        that a later call continues is stored in the variables. Wait and hand-over are both the time blocked in
        next(): slicing is inside XLA."""
        feeder, position = self.feeder, self.feeder.position
        times = tf.zeros([2], tf.float64)
        done = tf.constant(0)
        while done < num_steps:
            count = tf.minimum(self.block - position, num_steps - done)
            if position == 0:
                block, wait = feeders.timed_next(iterator, self.measure_input_wait)
                groups = feeder.grouped(block)
                if count < self.block:
                    feeder.store(groups)
            else:
                wait = tf.constant(0.0, tf.float64)
                groups = feeder.stored()
            self.strategy.run(self._block_steps, args=(groups, position.read_value(), count))
            position.assign((position + count) % self.block)
            done += count
            times += tf.stack([wait, wait])
        return times

    def learning_rate(self):
        """The learning rate of the next update."""
        return float(keras.ops.convert_to_numpy(self.optimizer.learning_rate))

    def reload_state(self):
        """Nothing to do: this engine trains the Keras variables themselves (the JAX engine keeps a copy)."""

    def sync_to_model(self):
        """Nothing to do: the Keras variables are the state (see reload_state)."""

    def reset_input(self):
        """A new iterator starts at a block boundary, with nothing fetched ahead."""
        self.feeder.reset()

    def _train_loop_fn(self, iterator, num_steps):
        """Returns [seconds blocked in next(iterator), seconds from asking for a batch to having it], summed over
        the steps; the second also counts slicing a batch out of a block. Traced without autograph: the Python
        branches below are on the trainer's fixed settings, the loop over steps is a tf.while_loop."""

        def one_step(i, times):
            if self.feeder.overlaps:
                wait = self.feeder.overlapped_step(iterator, lambda batch: self.strategy.run(self._step, args=batch))
                times += tf.stack([wait, wait])
            elif self.measure_input_wait:
                start = tf.timestamp()
                with tf.control_dependencies([start]):
                    batch, wait = self.feeder.next_batch(iterator)
                with tf.control_dependencies(tf.nest.flatten(batch, expand_composites=True)):
                    handover = tf.timestamp() - start
                    times += tf.stack([handover if wait is None else wait, handover])
                self.strategy.run(self._step, args=batch)
            else:
                batch, _ = self.feeder.next_batch(iterator)
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
        if self.feeder.overlaps and not feeders.OverlapFeeder.can_hold(iterator.element_spec):
            self.feeder = feeders.PlainFeeder()  # composite batches (ragged, sparse) are not held ahead
        self.feeder.start(iterator)
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
        evaluation then finds it traced). Runs nothing."""
        if steps is None:
            self._eval_loop.get_concrete_function(dataset)
        else:
            self._eval_steps.get_concrete_function(self._eval_iterator_for(dataset), tf.TensorSpec([], tf.int32))

    def evaluate(self, dataset, steps=None):
        """One pass over a distributed eval dataset of (features, label, weight); weighted loss and metrics.
        `steps`: the dataset repeats and one pass is this many batches: one iterator serves every evaluation (a new
        iterator per evaluation cost ~20x: docs/performance.md)."""
        for metric in [self.eval_loss, *self.eval_metrics]:
            metric.reset_state()
        if steps is None:
            self._eval_loop(dataset)
        else:
            self._eval_steps(self._eval_iterator_for(dataset), tf.constant(steps, tf.int32))
        return _results(self.eval_loss, self.eval_metrics)
