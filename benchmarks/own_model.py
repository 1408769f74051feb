"""Your own model: Keras `fit` against `tfapp.fit` on three models written as a user writes them, same data, batch
and steps, each run in its own process, alternating; on the TensorFlow and the JAX backend.

    python benchmarks/own_model.py                          # 2 rounds, both backends (~20 minutes on 2 cores)
    python benchmarks/own_model.py --rounds=3 --models=mlp,transformer --backends=tensorflow

Models (defined below, as in a user's script):
  mlp          a subclassed MLP (64-256-128-10) with a custom loss (cross-entropy with label smoothing), digits
  cnn          a functional CNN (conv32-conv64-pool-dense128-dense10), digits 8×8×1
  transformer  a small Keras transformer classifier over token ids (2 blocks, d=64, 4 heads, 64 tokens, vocab
               512), generated sequences whose class is the most frequent of four token groups
Runners: `fit` (defaults), `fit_spe32` (`steps_per_execution=32`), `tfapp` (`tfapp.fit` with its defaults: the
loop size and XLA chosen by its autotune, validation every 10% of the steps, the best checkpoint kept).
Every runner trains the same steps on the same train rows with the same batch size and Adam(1e-3), then reports
its test metric on the same held-out rows (tfapp: on the checkpoint validation kept). Steps per second exclude
the first call (tracing, compiling): fit from its batch-end callbacks after the first, tfapp from its report.
Prints one JSON line per run, then per model and backend the medians and tfapp's ratio to the better fit.
The machine is shared and noisy: only ratios within one invocation mean anything.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

STEPS = {"mlp": 30000, "cnn": 800, "transformer": 1500}
BATCH = 64
RUNNERS = ("fit", "fit_spe32", "tfapp")


# -- the user's code -----------------------------------------------------------------------------------------------
def user_models():
    import keras

    class MLP(keras.Model):
        def __init__(self):
            super().__init__()
            self.hidden = [keras.layers.Dense(256, activation="relu"), keras.layers.Dense(128, activation="relu")]
            self.out = keras.layers.Dense(10)

        def call(self, x):
            x = keras.ops.reshape(x, (-1, 64)) / 16.0
            for layer in self.hidden:
                x = layer(x)
            return self.out(x)

    def smoothed_loss(y_true, logits):
        onehot = keras.ops.one_hot(keras.ops.cast(y_true, "int32"), 10) * 0.9 + 0.01
        return keras.losses.categorical_crossentropy(onehot, logits, from_logits=True)

    def cnn():
        inputs = keras.Input((8, 8, 1))
        x = keras.layers.Rescaling(1 / 16)(inputs)
        x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
        x = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(x)
        x = keras.layers.Flatten()(keras.layers.MaxPooling2D(2)(x))
        x = keras.layers.Dense(128, activation="relu")(x)
        return keras.Model(inputs, keras.layers.Dense(10)(x))

    def transformer():
        inputs = keras.Input((64,), dtype="int32")
        x = keras.layers.Embedding(512, 64)(inputs)
        for _ in range(2):
            attended = keras.layers.MultiHeadAttention(4, 16)(x, x)
            x = keras.layers.LayerNormalization()(x + attended)
            hidden = keras.layers.Dense(128, activation="relu")(x)
            x = keras.layers.LayerNormalization()(x + keras.layers.Dense(64)(hidden))
        x = keras.layers.GlobalAveragePooling1D()(x)
        return keras.Model(inputs, keras.layers.Dense(4)(x))

    sparse = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return {"mlp": (MLP, smoothed_loss), "cnn": (cnn, sparse), "transformer": (transformer, sparse)}


def user_data(name):
    """(train, validation, test) as (x, y) numpy pairs."""
    import numpy as np
    rng = np.random.default_rng(0)
    if name == "transformer":
        x = rng.integers(0, 512, size=(6000, 64)).astype("int32")
        y = np.argmax(np.stack([np.sum(x % 4 == g, axis=1) for g in range(4)], axis=1), axis=1)
    else:
        from sklearn.datasets import load_digits
        x, y = load_digits(return_X_y=True)
        x = x.reshape(-1, 8, 8, 1).astype("float32") if name == "cnn" else x.reshape(-1, 8, 8).astype("float32")
    order = rng.permutation(len(y))
    cut_test, cut_val = int(0.8 * len(y)), int(0.7 * len(y))
    part = lambda index: (x[index], y[index])  # noqa: E731
    return part(order[:cut_val]), part(order[cut_val:cut_test]), part(order[cut_test:])


# -- one run, in its own process -----------------------------------------------------------------------------------
def run_one(model_name, runner, seed=0):
    import keras
    import numpy as np
    keras.utils.set_random_seed(seed)
    build, loss = user_models()[model_name]
    train, validation, test = user_data(model_name)
    steps = STEPS[model_name]
    model = build()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss, metrics=["sparse_categorical_accuracy"],
                  steps_per_execution=32 if runner == "fit_spe32" else 1)
    if runner == "tfapp":
        import tfapp
        with tempfile.TemporaryDirectory() as model_dir:
            run = tfapp.fit(model, train, validation=validation, test=test, steps=steps, batch_size=BATCH,
                            model_dir=os.path.join(model_dir, "run"), export=False)
        report = run.report
        return {"steps_per_s": report["steps_per_second"],
                "test_accuracy": report["final_metrics"]["sparse_categorical_accuracy"],
                "chosen": {"jit_compile": report["jit_compile"], "steps_per_loop": report["steps_per_loop"]}}
    import tensorflow as tf
    dataset = tf.data.Dataset.from_tensor_slices(train).shuffle(len(train[1]), seed=seed).repeat().batch(
        BATCH, drop_remainder=True).prefetch(2)
    times = []

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            times.append((batch, time.perf_counter()))

    model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[Clock()])
    (first_batch, first_time), (last_batch, last_time) = times[0], times[-1]
    _, accuracy = model.evaluate(test[0], test[1], batch_size=BATCH, verbose=0)
    return {"steps_per_s": (last_batch - first_batch) / (last_time - first_time), "test_accuracy": accuracy}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--models", default=",".join(STEPS))
    parser.add_argument("--backends", default="tensorflow,jax")
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "RUNNER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(*args.child)))
        return
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    results = []
    for round_index in range(args.rounds):
        for backend in args.backends.split(","):
            for model_name in args.models.split(","):
                for runner in RUNNERS:
                    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3",
                           "PYTHONPATH": repo + os.pathsep + os.environ.get("PYTHONPATH", "")}
                    out = subprocess.run([sys.executable, __file__, "--child", model_name, runner], env=env,
                                         capture_output=True, text=True, cwd=repo)
                    if out.returncode:
                        sys.exit(f"{backend} {model_name} {runner} failed:\n{out.stderr[-3000:]}")
                    row = {"backend": backend, "model": model_name, "runner": runner, "round": round_index,
                           **json.loads(out.stdout.strip().splitlines()[-1])}
                    results.append(row)
                    print(json.dumps(row), flush=True)
    print("\n| backend | model | fit | fit spe32 | tfapp | tfapp / best fit | test accuracy: fit, spe32, tfapp |")
    print("|---|---|---|---|---|---|---|")
    for backend in args.backends.split(","):
        for model_name in args.models.split(","):
            def median(runner, key):
                return statistics.median(r[key] for r in results if r["backend"] == backend and
                                         r["model"] == model_name and r["runner"] == runner)
            speeds = {runner: median(runner, "steps_per_s") for runner in RUNNERS}
            accuracy = ", ".join(f"{median(runner, 'test_accuracy'):.4f}" for runner in RUNNERS)
            print(f"| {backend} | {model_name} | {speeds['fit']:.1f} | {speeds['fit_spe32']:.1f} | "
                  f"{speeds['tfapp']:.1f} | **{speeds['tfapp'] / max(speeds['fit'], speeds['fit_spe32']):.2f}×** | "
                  f"{accuracy} |")


if __name__ == "__main__":
    main()
