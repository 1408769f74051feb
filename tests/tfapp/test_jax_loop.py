"""tfapp.jax_loop.JaxTrainer on its own (a Keras-on-JAX process): one compiled program for loops of any length and
for every block, with or without a keras.distribution (issue #17's 1-step-per-loop regression: without one, the
second call and every new block compiled again, and autotune's probe read ~3 steps/s)."""
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytest.importorskip("jax")

COMPILES = r"""
import json, sys
import jax, keras, numpy as np
from tfapp import jax_loop
distribution = keras.distribution.DataParallel() if sys.argv[1] == "data_parallel" else None
inputs = keras.Input((8,))
model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Dense(16, activation="relu")(inputs)))
loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
rng = np.random.default_rng(0)
blocks = [(rng.standard_normal((5, 4, 8)).astype("float32"), rng.integers(0, 3, (5, 4)).astype("int32"))
          for _ in range(8)]
if sys.argv[3] == "tf.data":  # as tfapp-train feeds it: the first call compiles the program ahead (AOT)
    import tensorflow as tf
    blocks = iter(tf.data.Dataset.from_tensor_slices(tuple(np.stack(leaves) for leaves in zip(*blocks))))
else:
    blocks = iter(blocks)
sharding = None
if distribution is not None:
    keras.distribution.set_distribution(distribution)
    sharding = jax.sharding.NamedSharding(distribution.device_mesh.backend_mesh,
                                          jax.sharding.PartitionSpec(None, "batch"))
metrics = lambda: [keras.metrics.SparseCategoricalAccuracy()]
trainer = jax_loop.JaxTrainer(model, keras.optimizers.Adam(1e-2), loss, metrics, 4, 5,
                              "block" if sys.argv[2] == "block" else True, distribution, sharding)
losses = [trainer.train(blocks, steps)["loss"] for steps in (1, 1, 2, 7, 3, 11)]  # 25 steps: 5 blocks
function = trainer._train_steps if sys.argv[2] == "block" else trainer._train_step
# the program the loops ran: the jitted function's (once compiled) or the one compiled ahead (then jit compiled none)
compiled = function._cache_size() + (trainer._program is not None)
print(json.dumps({"compiled": compiled, "ahead": trainer._program is not None, "losses": losses}))
"""


@pytest.mark.parametrize("feed", ["python", "tf.data"])
@pytest.mark.parametrize("distribution", ["none", "data_parallel"])
@pytest.mark.parametrize("jit", ["block", "step"])
def test_loops_of_any_length_and_every_block_share_one_compiled_program(distribution, jit, feed):
    out = subprocess.run([sys.executable, "-c", COMPILES, distribution, jit, feed], cwd=REPO, capture_output=True,
                         text=True, timeout=300, env={**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"})
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["compiled"] == 1 and result["ahead"] == (feed == "tf.data"), result
    assert all(loss == loss and loss > 0 for loss in result["losses"]), result
