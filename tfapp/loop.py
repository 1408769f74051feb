"""The hot loop: N optimizer steps per host round-trip, inside one tf.function, on any tf.distribute strategy.

    python -c "import tfapp.run as r, tfapp.config as c; r.run(c.Config(steps_per_loop=16).resolved())"

`Trainer.train(iterator, n)` runs `for _ in tf.range(n): strategy.run(step, next(iterator))` in one call; `n` is
a tensor, so a shorter last loop does not retrace. The per-replica step averages the per-example loss over the
*global* batch (`tf.nn.compute_average_loss`), so the gradients summed across replicas by the optimizer equal the
single-device gradient. Metrics are Keras metrics with on-read variables: reading them sums over replicas.
The loop knows nothing of tasks, files or flags.
"""
import keras
import tensorflow as tf


def _results(loss_metric, metrics):
    return {m.name: float(m.result()) for m in [loss_metric, *metrics]}


class Trainer:
    """Owns the compiled train/eval functions for one model on one strategy."""

    def __init__(self, strategy, model, optimizer, loss_fn, metrics_fn, global_batch_size, jit_compile=False,
                 measure_input_wait=True, block=None):
        self.strategy = strategy
        self.model = model
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.global_batch_size = global_batch_size  # examples per step, summed over all replicas and workers
        self.jit_compile = bool(jit_compile)
        # tf.timestamp is refused under op determinism: then input wait is not measured (reported as None).
        self.measure_input_wait = measure_input_wait
        self.last_input_wait = 0.0
        # block=K: the iterator yields blocks of K batches ([K, batch, ...]); one next() per K steps, the block
        # kept in variables and sliced per step (one replica only). The position survives between calls.
        self.block = block
        self._position = tf.Variable(0, dtype=tf.int32, trainable=False) if block else None
        self._block_variables = None
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
        # XLA applies to the per-replica step; the multi-step loop around it stays a plain tf.function.
        self._step = tf.function(self._replica_step, jit_compile=True) if jit_compile else self._replica_step
        self._train_loop = tf.function(self._train_loop_fn)
        self._eval_loop = tf.function(self._eval_loop_fn)

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

    def _next_batch(self, iterator):
        if not self.block:
            return next(iterator)
        if self._position == 0:
            for variable, value in zip(tf.nest.flatten(self._block_variables), tf.nest.flatten(next(iterator))):
                variable.assign(value)
        batch = tf.nest.map_structure(lambda variable: variable[self._position], self._block_variables)
        self._position.assign((self._position + 1) % self.block)
        return batch

    def reset_input(self):
        """A new iterator starts at a block boundary."""
        if self.block:
            self._position.assign(0)

    def _train_loop_fn(self, iterator, num_steps):
        """Returns the seconds spent waiting in `next(iterator)` (input not ready), summed over the steps."""
        input_wait = tf.constant(0.0, tf.float64)
        for _ in tf.range(num_steps):
            if self.measure_input_wait:
                start = tf.timestamp()
                with tf.control_dependencies([start]):
                    batch = self._next_batch(iterator)
                with tf.control_dependencies(tf.nest.flatten(batch, expand_composites=True)):
                    input_wait += tf.timestamp() - start
            else:
                batch = self._next_batch(iterator)
            self.strategy.run(self._step, args=batch)
        return input_wait

    def _eval_step(self, features, labels, weights):
        predictions = self.model(features, training=False)
        self.eval_loss.update_state(self.loss_fn(labels, predictions), sample_weight=weights)
        for metric in self.eval_metrics:
            metric.update_state(labels, predictions, sample_weight=weights)

    def _eval_loop_fn(self, dataset):
        for features, labels, weights in dataset:
            self.strategy.run(self._eval_step, args=(features, labels, weights))

    def train(self, iterator, num_steps):
        """Runs `num_steps` optimizer steps in one call; returns the mean train loss and metrics over them.

        `self.last_input_wait` holds the seconds this call waited for input batches."""
        for metric in [self.train_loss, *self.train_metrics]:
            metric.reset_state()
        if self.block and self._block_variables is None:
            self._block_variables = tf.nest.map_structure(
                lambda spec: tf.Variable(tf.zeros(spec.shape, spec.dtype), trainable=False), iterator.element_spec)
        self.last_input_wait = float(self._train_loop(iterator, tf.constant(num_steps, tf.int32)))
        return _results(self.train_loss, self.train_metrics)

    def evaluate(self, dataset):
        """One pass over a distributed eval dataset of (features, label, weight); weighted loss and metrics."""
        for metric in [self.eval_loss, *self.eval_metrics]:
            metric.reset_state()
        self._eval_loop(dataset)
        return _results(self.eval_loss, self.eval_metrics)
