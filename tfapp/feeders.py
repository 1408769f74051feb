"""How batches reach the TensorFlow engine's compiled steps (tfapp.loop.Trainer): one feeder per input path, all
giving the same batches in the same order.

    python -m pytest -q tests/tfapp/test_loop.py -k "blocks_overlap"   # the three feeders train bit for bit alike

- `PlainFeeder` (several replicas): `next()` then the step.
- `OverlapFeeder` (one replica, batches from tf.data): the step runs on a batch held in variables while `next()`
  fetches the following one into them, so `next()`'s latency leaves the critical path; the held batch survives
  between calls (the order of batches is unchanged).
- `BlockFeeder` (one replica, in-memory arrays): the iterator yields blocks of K batches; one `next()` per K steps,
  the block kept in variables (one per (dtype, shape) group of its leaves) and a batch gathered out of it per step.
  It also holds what the XLA block loop (`jit_compile="block"`) needs: `batches_of`, `store`, `stored`.

`next_batch`/`overlapped_step` run inside the traced loop; `start` (eager, before a call) and `reset` (a new
iterator starts) outside it. The JAX engine feeds its blocks in `tfapp.jax_loop` (device arrays, not variables).
"""
import tensorflow as tf


def timed_next(iterator, measure):
    """(next(iterator), seconds blocked in it; 0 unless `measure`): the time the input pipeline kept the loop
    waiting (tf.timestamp is refused under op determinism: then it is not measured)."""
    if not measure:
        return next(iterator), tf.constant(0.0, tf.float64)
    start = tf.timestamp()
    with tf.control_dependencies([start]):
        batch = next(iterator)
    with tf.control_dependencies(tf.nest.flatten(batch, expand_composites=True)):
        return batch, tf.timestamp() - start


class PlainFeeder:
    """next() per step."""
    overlaps = False

    def start(self, iterator):
        pass

    def reset(self):
        pass

    def next_batch(self, iterator):
        """(batch, None: the hand-over is all wait)."""
        return next(iterator), None


class OverlapFeeder:
    """The next batch fetched while the step runs (one replica)."""
    overlaps = True

    def __init__(self, measure_input_wait):
        self.measure_input_wait = measure_input_wait
        self._pending, self._valid, self._spec = None, False, None

    @staticmethod
    def can_hold(element_spec):
        """Composite batches (ragged, sparse) are not held ahead: only dense tensors fit in variables."""
        return all(isinstance(spec, tf.TensorSpec) for spec in tf.nest.flatten(element_spec))

    def start(self, iterator):
        """Eagerly, before a call: the first batch of a new iterator into the pending variables."""
        if self._valid:
            return
        self._spec = iterator.element_spec
        leaves = tf.nest.flatten(next(iterator))
        if self._pending is None:
            self._pending = [tf.Variable(leaf, trainable=False) for leaf in leaves]
        else:
            for variable, leaf in zip(self._pending, leaves):
                variable.assign(leaf)
        self._valid = True

    def reset(self):
        self._valid = False

    def overlapped_step(self, iterator, run_step):
        """Runs `run_step(batch)` on the pending batch while next() fetches the following one into the pending
        variables; returns the seconds the fetch outlasted the step (the loop waited for input)."""
        batch = tf.nest.pack_sequence_as(self._spec, [variable.read_value() for variable in self._pending])
        with tf.control_dependencies(tf.nest.flatten(batch)):
            upcoming = tf.nest.flatten(next(iterator))
        stored = [variable.assign(leaf) for variable, leaf in zip(self._pending, upcoming)]
        loss = run_step(batch)
        if not self.measure_input_wait:
            return tf.constant(0.0, tf.float64)
        # The step's timestamp first: timestamps may run in program order, and then the fetch's is never earlier.
        with tf.control_dependencies([loss]):
            step_done = tf.timestamp()
        with tf.control_dependencies(stored):
            fetch_done = tf.timestamp()
        return tf.maximum(fetch_done - step_done, 0.0)


class BlockFeeder:
    """Blocks of `block` batches, one next() per block; the position in the block survives between calls."""
    overlaps = False

    def __init__(self, block, measure_input_wait):
        self.block = block
        self.measure_input_wait = measure_input_wait
        self.position = tf.Variable(0, dtype=tf.int32, trainable=False)
        self._variables = self._spec = self._groups = None

    def start(self, iterator):
        if self._variables is None:
            self._make_variables(iterator.element_spec)

    def reset(self):
        """A new iterator starts at a block boundary."""
        self.position.assign(0)

    def _make_variables(self, spec):
        """One variable per (dtype, shape) group of the block's leaves, stacked on axis 1: a 10-column table is
        sliced with one read, one slice and one unstack per step instead of ten of each."""
        self._spec = spec
        specs, groups = tf.nest.flatten(spec), {}
        for i, leaf in enumerate(specs):
            groups.setdefault((leaf.dtype, tuple(leaf.shape)), []).append(i)
        self._groups = list(groups.values())
        self._variables = [
            tf.Variable(tf.zeros([self.block, len(members), *specs[members[0]].shape[1:]], specs[members[0]].dtype),
                        trainable=False) for members in self._groups]

    def grouped(self, block):
        """The block's leaves stacked per (dtype, shape) group on axis 1 (a lone leaf only gains an axis)."""
        leaves = tf.nest.flatten(block)
        return [tf.expand_dims(leaves[members[0]], 1) if len(members) == 1 else
                tf.stack([leaves[i] for i in members], axis=1) for members in self._groups]

    def store(self, groups):
        """Keeps a block (as `grouped` gives it) in the variables; the assign ops."""
        return [variable.assign(group) for variable, group in zip(self._variables, groups)]

    def stored(self):
        """The kept block, as grouped tensors."""
        return [variable.read_value() for variable in self._variables]

    def batch_of(self, groups, index):
        """Batch `index` of a block held as grouped tensors or variables."""
        leaves = [None] * len(tf.nest.flatten(self._spec))
        for group, members in zip(groups, self._groups):
            # gather, not group[index]: XLA compiles a strided slice again for every start it sees.
            for i, value in zip(members, tf.unstack(tf.gather(group, index), num=len(members))):
                leaves[i] = value
        return tf.nest.pack_sequence_as(self._spec, leaves)

    def next_batch(self, iterator):
        """(batch, seconds blocked in next()): a next() every `block` steps, else a slice of the kept block."""
        def fetch():
            block, wait = timed_next(iterator, self.measure_input_wait)
            with tf.control_dependencies(self.store(self.grouped(block))):
                return tf.identity(wait)

        wait = tf.cond(tf.equal(self.position, 0), fetch, lambda: tf.constant(0.0, tf.float64))
        batch = self.batch_of(self._variables, self.position)  # reads after the cond's stores
        self.position.assign((self.position + 1) % self.block)
        return batch, wait
