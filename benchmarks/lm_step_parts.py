"""Where a language-model train step's time goes: forward, forward + backward, and the step with Adam or Muon
(Newton-Schulz with 5 or 3 iterations), with or without XLA, on the task's `gpt` at batch 16 x 64.

    python benchmarks/lm_step_parts.py false fwd fwdbwd adam muon5 muon3   # no XLA
    python benchmarks/lm_step_parts.py true fwd fwdbwd adam muon5 muon3    # XLA (jit_compile=True)

Prints the trace and the first call (XLA: the compile) and the best and median of 5 means of 10 steps. Run the
two lines one after the other (each one process), not beside other work: the machine is shared.
"""
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfapp import muon  # noqa: E402
from tfapp.tasks import language_model  # noqa: E402

SPEC = {"sequence_length": 64, "vocabulary_size": 66}
BATCH = 16
OPTIMIZERS = {"fwd": lambda: None, "fwdbwd": lambda: None, "adam": lambda: keras.optimizers.Adam(1e-3),
              "muon5": lambda: keras.optimizers.Muon(1e-3, weight_decay=None, adam_weight_decay=None),
              "muon3": lambda: keras.optimizers.Muon(1e-3, weight_decay=None, adam_weight_decay=None, ns_steps=3),
              "grouped": lambda: muon.GroupedMuon(1e-3, weight_decay=None, adam_weight_decay=None),
              "grouped3": lambda: muon.GroupedMuon(1e-3, weight_decay=None, adam_weight_decay=None, ns_steps=3)}


def bench(part, jit):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x, y = (tf.constant(rng.integers(0, SPEC["vocabulary_size"], (BATCH, SPEC["sequence_length"])), tf.int32)
            for _ in range(2))
    model = language_model.build_gpt(None, SPEC)
    optimizer = OPTIMIZERS[part]()
    if optimizer is not None:
        optimizer.build(model.trainable_variables)

    @tf.function(jit_compile=jit, autograph=False)
    def step(x, y):
        if part == "fwd":
            return tf.reduce_mean(model(x, training=False))
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, model(x, training=True),
                                                                                from_logits=True))
        gradients = tape.gradient(loss, model.trainable_variables)
        if optimizer is None:  # keep the gradients alive without an update
            return loss + tf.add_n([tf.reduce_sum(g) for g in gradients]) * 0
        optimizer.apply(gradients, model.trainable_variables)
        return loss

    start = time.perf_counter()
    step.get_concrete_function(x, y)
    trace = time.perf_counter() - start
    start = time.perf_counter()
    step(x, y).numpy()
    first = time.perf_counter() - start
    for _ in range(5):
        step(x, y)
    means = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(10):
            result = step(x, y)
        result.numpy()
        means.append((time.perf_counter() - start) / 10)
    print(f"jit={jit} {part:7s} trace {trace:5.2f} s  first call {first:5.2f} s  step {1000 * min(means):6.1f} ms "
          f"(median {1000 * statistics.median(means):6.1f})", flush=True)


def main():
    jit = sys.argv[1] == "true"
    for part in sys.argv[2:] or OPTIMIZERS:
        bench(part, jit)


if __name__ == "__main__":
    main()
