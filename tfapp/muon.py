"""`--optimizer=muon`: Keras's Muon with its Newton-Schulz iterations batched over kernels of one shape.

    python benchmarks/lm_step_parts.py true muon5 grouped   # Keras's Muon against this one, XLA, gpt at batch 16

`keras.optimizers.Muon` orthogonalizes each 2-D kernel's momentum on its own: the language model's 24 kernels give
24 × 5 iterations of three small matmuls in every step. `GroupedMuon` computes the same updates with the
kernels of one (oriented) shape stacked, e.g. the 16 [128, 128] attention kernels as one [16, 128, 128] batch and
the 8 feed-forward ones ([512, 128] ones transposed) as one [8, 128, 512], so a step has two batched
orthogonalizations, and its Adam part computes its bias corrections once instead of once per variable. Same
slots, same arithmetic (updates equal Keras's to float32 rounding, `tests/tfapp/test_muon.py`), same checkpoints.
Replicated variables (MirroredStrategy, TPUStrategy, a `keras.distribution` layout) take Keras's per-variable
path: each replica updates its own copy there.
"""
import keras
from keras import ops


def _distributed(variables):
    """True where updates must go through the distribution's per-variable path."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        return any(isinstance(getattr(v, "value", v), tf.distribute.DistributedValues) for v in variables)
    return keras.distribution.distribution() is not None


class GroupedMuon(keras.optimizers.Muon):
    """keras.optimizers.Muon (no weight decay) with batched Newton-Schulz; see the module docstring."""

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        if _distributed(trainable_variables) or self.weight_decay or self.adam_weight_decay:
            return super()._backend_update_step(grads, trainable_variables, learning_rate)
        self._grouped_update(grads, trainable_variables, learning_rate)

    def _grouped_update(self, grads, variables, learning_rate):
        groups = {}  # oriented shape -> [(variable, nesterov momentum, transposed)]
        adam = []
        for grad, variable in zip(grads, variables):
            index = self._get_variable_index(variable)
            m, v = self.momentums[index], self.adam_velocities[index]
            if v is not None:
                adam.append((ops.cast(grad, variable.dtype), variable, m, v))
                continue
            self.assign_add(m, ops.add(grad, m * (self.momentum - 1)))
            direction = ops.add(grad, self.momentum * m) if self.nesterov else m
            rows, columns = variable.shape
            transposed = rows > columns
            groups.setdefault((min(rows, columns), max(rows, columns)), []).append(
                (variable, ops.transpose(direction) if transposed else direction, transposed))
        for members in groups.values():
            stacked = self._orthogonalized(ops.stack([direction for _, direction, _ in members]))
            for (variable, _, transposed), update in zip(members, ops.unstack(stacked, num=len(members))):
                update = ops.transpose(update) if transposed else update
                self.assign_sub(variable, self.lr_adjust(learning_rate * update))
        if adam:
            self._adam_updates(adam, learning_rate * self.adam_lr_ratio)

    def _orthogonalized(self, x):
        """Keras's quintic Newton-Schulz on a batch [n, rows, columns] of matrices with rows <= columns."""
        a, b, c = self.muon_a, self.muon_b, self.muon_c
        x = x / (ops.norm(x, axis=(-2, -1), keepdims=True) + 1e-7)
        for _ in range(self.ns_steps):
            gram = ops.matmul(x, ops.swapaxes(x, -1, -2))
            x = a * x + ops.matmul(b * gram + c * ops.matmul(gram, gram), x)
        return x

    def _adam_updates(self, members, learning_rate):
        """Muon's Adam step for embeddings, vectors and the excluded layers; the bias corrections once."""
        step = ops.cast(self.iterations + 1, "float32")
        alpha = (ops.cast(learning_rate, "float32") * ops.sqrt(1 - ops.power(self.adam_beta_2, step))
                 / (1 - ops.power(self.adam_beta_1, step)))
        for grad, variable, m, v in members:
            self.assign_add(m, ops.multiply(ops.subtract(grad, m), 1 - self.adam_beta_1))
            self.assign_add(v, ops.multiply(ops.subtract(ops.square(grad), v), 1 - self.adam_beta_2))
            rate = ops.cast(alpha, variable.dtype)
            self.assign_sub(variable, ops.divide(ops.multiply(m, rate), ops.add(ops.sqrt(v), self.epsilon)))
