"""Sample weights: `(x, y, sample_weight)` data (arrays or a tf.data.Dataset) weighs the loss and every metric on
both engines; a weight of 0 removes an example from training and from evaluation; weights of 1 train as no
weights do; bad weights stop with one line naming the split."""
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from pipelines import batching, python_source, validation
from pipelines.source import DataError
from tests.conftest import REPO
from tfapp.tasks.task import features_and_label

# Linear regression where 40% of the labels (train and test) are negated: weight 0 on those rows leaves the clean
# problem, which a linear model then solves exactly; unweighted it cannot (its best fit is ~0.2 × the truth).
WEIGHTED_RUN = """
import sys
import keras, numpy as np, tensorflow as tf
import tfapp
rng = np.random.default_rng(0)
truth = rng.normal(size=8).astype("float32")

def data(rows):
    x = rng.normal(size=(rows, 8)).astype("float32")
    corrupted = rng.random(rows) < 0.4
    return x, np.where(corrupted, -1.0, 1.0).astype("float32") * (x @ truth), (~corrupted).astype("float32")

(x, y, w), (x_test, y_test, w_test) = data(2000), data(400)
results = {}
for name, train in [("weighted", tf.data.Dataset.from_tensor_slices((x, y, w))), ("ones", (x, y, np.ones_like(w))),
                    ("none", (x, y))]:
    keras.utils.set_random_seed(0)
    run = tfapp.fit(keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)]), train, test=(x_test, y_test, w_test),
                    loss="mse", metrics=["mae"], optimizer=keras.optimizers.Adam(0.05), steps=200, batch_size=64,
                    model_dir=f"{sys.argv[1]}/{name}", eval_every=100, steps_per_loop=10, deterministic=True,
                    export=False)
    results[name] = run.report["final_metrics"]["mae"], run.model.get_weights()[0]
print("WEIGHTED", results["weighted"][0])
print("NONE", results["none"][0])
print("ONES_SAME", float(np.max(np.abs(results["ones"][1] - results["none"][1]))))
"""


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_zero_weights_remove_corrupted_rows_from_training_and_evaluation(tmp_path, backend):
    if backend == "jax":
        pytest.importorskip("jax")
    env = {**os.environ, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-c", WEIGHTED_RUN, str(tmp_path)], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    values = dict(line.split() for line in done.stdout.splitlines() if line.startswith(("WEIGHTED", "NONE", "ONES")))
    # Trained and evaluated on the clean rows only: exact. The unweighted model fits the mixture, and the weighted
    # test metric (clean rows) shows it.
    assert float(values["WEIGHTED"]) < 0.01, values
    assert float(values["NONE"]) > 0.5, values
    assert float(values["ONES_SAME"]) < 1e-5, values  # weights of 1 train as no weights


def test_weights_travel_with_their_rows_through_splits_and_padding():
    x = np.arange(50, dtype=np.float32).reshape(25, 2)
    y = np.arange(25, dtype=np.int64) % 5
    weight = (y % 2).astype(np.float32) + 0.5  # odd labels 1.5, even 0.5: a row's weight follows from its label
    options = type("Options", (), {"test_fraction": 0.2, "seed": 3})()
    source = validation.with_validation(python_source.from_parts("toy", (x, y, weight), options), 0.25, seed=1)
    for split in ("train", "validation", "test"):
        columns = source.arrays[split]
        np.testing.assert_array_equal(columns["sample_weight"], (columns["y"] % 2) + 0.5)
        example = next(iter(source.splits[split]()))
        assert float(example["sample_weight"]) == float(example["y"] % 2) + 0.5
    # Evaluation: the data's weight times the padding's 0/1 (test has 5 rows, padded to 2 batches of 4).
    batches = list(batching.eval_dataset(source.splits["test"], features_and_label, 4, source.num_examples["test"]))
    labels = np.concatenate([b[1].numpy() for b in batches])
    weights = np.concatenate([b[2].numpy() for b in batches])
    np.testing.assert_array_equal(weights[:5], (labels[:5] % 2) + 0.5)
    np.testing.assert_array_equal(weights[5:], 0.0)
    # Training batches are (features, label, weight), the weight still that of its row.
    features, labels, weights = next(iter(batching.train_dataset(source.splits["train"], features_and_label, 8, 0)))
    np.testing.assert_array_equal(weights.numpy(), (labels.numpy() % 2) + 0.5)


@pytest.mark.parametrize("train, message", [
    ((np.zeros((4, 2)), np.zeros(4), np.zeros(3)), "toy train: sample weights must be one number per example (4)"),
    ((np.zeros((4, 2)), np.zeros(4), np.zeros((4, 2))), "got float64 of shape (4, 2)"),
    ((np.zeros((4, 2)), np.zeros(4), np.array(list("abcd"))), "sample weights must be one number per example"),
    (tf.data.Dataset.from_tensor_slices((np.zeros((4, 2)), np.zeros(4), np.zeros(4), np.zeros(4))),
     "expected a dataset of unbatched (x, y) or (x, y, sample_weight) examples"),
])
def test_bad_sample_weights_stop_with_one_line(train, message):
    options = type("Options", (), {"test_fraction": 0.25, "seed": 0})()
    with pytest.raises(DataError) as error:
        python_source.from_parts("toy", train, options)
    assert message in str(error.value) and "\n" not in str(error.value)
