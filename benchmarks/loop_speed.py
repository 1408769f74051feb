"""Optimizer steps per second: Keras `fit` against the tfapp loop, each run in its own process, alternating.

    python benchmarks/loop_speed.py                    # all workloads and runners, 2 rounds
    python benchmarks/loop_speed.py --rounds=3 --seconds=6 --workloads=mlp
    python benchmarks/loop_speed.py --workloads=cnn --data=digits28 --runners=fit,fit_spe32,tfapp_precision_auto

Workloads (batch 128, Adam, sparse categorical cross-entropy, random data from a repeated tf.data pipeline):
  mlp  784-256-10
  cnn  28×28×1 conv32-pool-conv64-pool-dense128-dense10
Pipelines (the same for every runner): `--pipeline=batches` (default) holds 16 random batches and hands out one
whole batch per element, so the runners measure the loop; `--pipeline=examples` batches 2,048 random examples
one by one (`from_tensor_slices(...).batch(128)`), which on 2 cores takes a share of the CPU from every runner
at the MLP's step rates. On one replica the tfapp runners take the same batches grouped into blocks of K
(`.batch(K)`, K = `pipelines.block_batches`, one `next()` per K steps), as `tfapp-train` does for in-memory data.
Runners:
  fit              `fit` with defaults, timed between epoch ends inside one `fit` call
  fit_spe32        the same with `steps_per_execution=32`
  hand_loop        the leanest loop we can write: 32 steps of tape + Adam per tf.function, no metrics
  tfapp_n32        `steps_per_loop=32`, no XLA, the default strategy that `--strategy=auto` picks on one device
  tfapp_auto       `--jit_compile=auto --steps_per_loop=auto`: measured (no XLA / XLA per step / XLA per block)
  tfapp_onedevice  N=32 on OneDeviceStrategy
  tfapp_mirrored2  N=32 on Mirrored over two logical CPUs
  tfapp_bf16       N=32, mixed_bfloat16: a different precision, not a like-for-like ratio
  tfapp_precision_auto  N=32 in the precision `--mixed_precision=auto` chooses here (tfapp.precision: bfloat16
                   where the CPU has AVX512-BF16/AMX and 50 steps of each show it faster and training as well)
JAX runners (their processes run with KERAS_BACKEND=jax; the same model, data and batch):
  jax_fit          Keras `fit` with defaults (one step per call) on the JAX backend, tf.data input
  jax_fit_spe32    Keras `fit(steps_per_execution=32)` on the JAX backend, tf.data input
  jax_bare         what a JAX user writes by hand: pure-function model, hand-written Adam, one `jax.jit` of a
                   `lax.scan` over the 16 batches, put on the device once (no tf.data, no metrics)
  jax_tfapp        tfapp's JAX loop (`tfapp.jax_loop.JaxTrainer`) fed as `tfapp-train --backend=jax` feeds
                   in-memory arrays (rows on the device, blocks of row indices from tf.data), autotuned as
                   it does (XLA per block / per step, steps per loop)
`--data=digits28` trains on real images of the same shapes instead (scikit-learn's digits resized to 28x28), each
runner exactly `--steps` steps, and adds its test accuracy on a held-out 20%: the precision's price in accuracy.
Prints one JSON line per run {"workload", "runner", "round", "steps_per_s"} (tfapp_auto adds what it chose),
then per workload the median steps/s of every runner and the ratios of each loop to plain fit and to the best
fit. The machine is shared and noisy: only ratios within one invocation mean anything.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

BATCH = 128
CHOICE = {}  # what tfapp_auto chose, reported with its speed
PIPELINE = "batches"  # or "examples": set by --pipeline in the parent and in every child
DATA = "random"  # or "digits28": set by --data in the parent and in every child
STEPS = 600  # --data=digits28: every runner trains exactly this many steps, then reports its test accuracy
RUNNERS = ("fit", "fit_spe32", "hand_loop", "tfapp_n32", "tfapp_auto", "tfapp_onedevice", "tfapp_mirrored2", "tfapp_bf16",
           "tfapp_precision_auto", "jax_fit", "jax_fit_spe32", "jax_bare", "jax_tfapp")


def build_model(workload):
    import keras
    if workload == "mlp":
        inputs = keras.Input((784,))
        x = keras.layers.Dense(256, activation="relu")(inputs)
    else:
        inputs = keras.Input((28, 28, 1))
        x = keras.layers.Conv2D(32, 3, activation="relu")(inputs)
        x = keras.layers.MaxPooling2D()(x)
        x = keras.layers.Conv2D(64, 3, activation="relu")(x)
        x = keras.layers.MaxPooling2D()(x)
        x = keras.layers.Flatten()(x)
        x = keras.layers.Dense(128, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x))


def _digits28(workload):
    """((x_train, y_train), (x_test, y_test)): scikit-learn's 8x8 digits (shipped in pipelines/data) resized to
    28x28 (bilinear) and scaled to [0, 1], split 80/20 with a fixed seed: real images of the benchmark's shape,
    so a runner's test accuracy says whether it trained as well as the others."""
    import numpy as np
    import tensorflow as tf
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with np.load(os.path.join(root, "pipelines", "data", "digits.npz")) as data:
        x, y = data["x"].astype("float32") / 16.0, data["y"].astype("int32")
    x = tf.image.resize(x[..., None], (28, 28)).numpy()
    x = x.reshape(len(x), 784) if workload == "mlp" else x
    order = np.random.default_rng(0).permutation(len(y))
    train, test = order[:int(0.8 * len(y))], order[int(0.8 * len(y)):]
    return (x[train], y[train]), (x[test], y[test])


def arrays(workload):
    import numpy as np
    if DATA == "digits28":
        return _digits28(workload)[0]
    shape = (784,) if workload == "mlp" else (28, 28, 1)
    rng = np.random.default_rng(0)
    return (rng.standard_normal((BATCH * 16, *shape)).astype("float32"),
            rng.integers(0, 10, BATCH * 16).astype("int32"))


def test_accuracy(workload, model):
    """--data=digits28: the trained model's accuracy on the held-out 20% (None on random data)."""
    import numpy as np
    if DATA != "digits28":
        return None
    x, y = _digits28(workload)[1]
    CHOICE["test_accuracy"] = float(np.mean(np.argmax(np.asarray(model(x, training=False)), axis=-1) == y))
    return CHOICE["test_accuracy"]


def _more(done, start, seconds):
    """Whether a runner's timed loop goes on: for `seconds` on random data, up to STEPS on digits28."""
    return done < STEPS if DATA == "digits28" else time.perf_counter() - start < seconds


def dataset(workload, global_batch=BATCH, input_context=None, block=None):
    """Endless batches of random data; `block=K` groups K batches per element (for `Trainer(block=K)`)."""
    import tensorflow as tf
    x, y = arrays(workload)
    batch = input_context.get_per_replica_batch_size(global_batch) if input_context else global_batch
    if PIPELINE == "examples":
        data = tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(batch, drop_remainder=True)
    else:
        batches = len(y) // batch
        data = tf.data.Dataset.from_tensor_slices((x[:batches * batch].reshape(batches, batch, *x.shape[1:]),
                                                   y[:batches * batch].reshape(batches, batch))).repeat()
    if block:
        data = data.batch(block, drop_remainder=True)
    return data.prefetch(-1)


def time_fit(workload, seconds, steps_per_execution):
    """Steady-state steps/s of one `fit` call, timed between epoch ends by a callback (the first epoch carries
    tracing). Timing whole repeated `fit` calls instead would add Keras' start-up and tear-down of each call: on
    this machine some `fit(steps_per_execution=32)` calls spent ~15 s outside their batches, which is not what
    a user with one long `fit` sees."""
    import keras
    model = build_model(workload)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  steps_per_execution=steps_per_execution)
    steps = 256  # per epoch: 8 executions of 32, or 256 of one step
    timing = {}

    class Clock(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            now = time.perf_counter()
            if epoch == 0:
                timing["start"], timing["steps"] = now, 0
                return
            timing["steps"] += steps
            timing["seconds"] = now - timing["start"]
            if timing["seconds"] >= seconds and DATA != "digits28":
                self.model.stop_training = True

    if DATA == "digits28":  # exactly STEPS steps; the first epoch (32 steps, tracing) is not timed
        steps = 32
    model.fit(dataset(workload), steps_per_epoch=steps, epochs=STEPS // steps if DATA == "digits28" else 10_000,
              verbose=0, callbacks=[Clock()])
    test_accuracy(workload, model)
    return timing["steps"] / timing["seconds"]


def time_hand_loop(workload, seconds, steps_per_loop=32):
    """The leanest loop we can write: N steps of tape + Adam in one tf.function, no metrics, no strategy."""
    import keras
    import tensorflow as tf
    model, optimizer = build_model(workload), keras.optimizers.Adam(1e-3)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer.build(model.trainable_variables)
    iterator = iter(dataset(workload))

    @tf.function
    def train(n):
        for _ in tf.range(n):
            x, y = next(iterator)
            with tf.GradientTape() as tape:
                value = loss(y, model(x, training=True))
            gradients = tape.gradient(value, model.trainable_variables)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables))

    n = tf.constant(steps_per_loop)
    train(n)  # compile + warm-up
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        train(n)
        done += steps_per_loop
    return done / (time.perf_counter() - start)


def time_tfapp(workload, seconds, strategy_name, steps_per_loop, jit_compile, policy="float32"):
    """tfapp's TensorFlow loop; `policy="auto"`: the precision `--mixed_precision=auto` would choose on this
    machine (tfapp.precision: native bfloat16, then float32 and bfloat16 trained on the same batches)."""
    import keras
    import pipelines
    import strategies
    from tfapp import autotune, loop, precision
    strategy = strategies.get_strategy(strategy_name, num_cpu_devices=2 if strategy_name == "mirrored" else None)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
    block = None
    if strategy.num_replicas_in_sync == 1:  # as tfapp.run does for in-memory arrays
        x, y = arrays(workload)
        block = pipelines.block_batches({"x": x, "y": y}, BATCH)
        block = block if block > 1 else None
    data = strategy.distribute_datasets_from_function(lambda context: dataset(workload, BATCH, context, block))

    def build(dtype_policy):
        keras.utils.set_random_seed(0)
        keras.config.set_dtype_policy(dtype_policy)
        with strategy.scope():
            return build_model(workload), keras.optimizers.Adam(1e-3)

    if policy == "auto":
        supported, why = precision.native("tensorflow", "cpu")
        policy = "float32"
        if supported:
            measured = {}
            for name, candidate in (("float32", "float32"), ("bfloat16", "mixed_bfloat16")):
                trial_model, trial_optimizer = build(candidate)
                trainer = loop.Trainer(strategy, trial_model, trial_optimizer, loss, lambda: [], BATCH, block=block)
                measured[name] = precision.timed_training(trainer, iter(data), precision.probe_steps(STEPS))
            choice, why = precision.decide(measured["float32"], measured["bfloat16"])
            policy = "mixed_bfloat16" if choice == "bfloat16" else "float32"
        CHOICE.update({"precision": policy, "precision_reason": why})
    model, optimizer = build(policy)
    iterator = iter(data)

    def make_trainer(jit):
        return loop.Trainer(strategy, model, optimizer, loss, lambda: [], BATCH, jit_compile=jit, block=block)

    if steps_per_loop == "auto":
        jits = autotune.jit_candidates("auto", strategy, blocks=bool(block))
        result = autotune.autotune(make_trainer, iterator, jit_candidates=jits, budget_seconds=4.0)
        trainer, steps_per_loop = result.trainer, result.steps_per_loop
        CHOICE.update(result.to_json()["choice"])
    else:
        trainer = make_trainer(jit_compile)
        trainer.train(iterator, steps_per_loop)  # compile + warm-up
    done, start = steps_per_loop if DATA == "digits28" else 0, time.perf_counter()
    timed = 0
    while _more(done, start, seconds):
        trainer.train(iterator, steps_per_loop)
        done, timed = done + steps_per_loop, timed + steps_per_loop
    speed = timed / (time.perf_counter() - start)
    test_accuracy(workload, model)
    return speed


def _bare_jax_model(workload, key):
    """(params, forward) of the benchmark model as pure JAX functions (He-normal kernels, zero biases)."""
    import jax
    import jax.numpy as jnp
    shapes = ([(784, 256), (256, 10)] if workload == "mlp" else
              [(3, 3, 1, 32), (3, 3, 32, 64), (1600, 128), (128, 10)])
    keys = jax.random.split(key, len(shapes))
    params = [(jax.random.normal(k, s) * jnp.sqrt(2.0 / jnp.prod(jnp.array(s[:-1]))), jnp.zeros(s[-1]))
              for k, s in zip(keys, shapes)]

    def conv_pool(x, kernel, bias):
        x = jax.lax.conv_general_dilated(x, kernel, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        x = jax.nn.relu(x + bias)
        return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")

    def forward(params, x):
        if workload == "cnn":
            x = conv_pool(conv_pool(x, *params[0]), *params[1]).reshape(x.shape[0], -1)
            params = params[2:]
        return jax.nn.relu(x @ params[0][0] + params[0][1]) @ params[1][0] + params[1][1]
    return params, forward


def time_jax_bare(workload, seconds):
    """The reference a JAX user would write: jit(lax.scan(step)) over device-resident batches, hand Adam."""
    import jax
    import jax.numpy as jnp
    x, y = arrays(workload)
    xs, ys = jax.device_put((x.reshape(16, BATCH, *x.shape[1:]), y.reshape(16, BATCH)))
    params, forward = _bare_jax_model(workload, jax.random.key(0))

    def loss(params, x, y):
        logits = jax.nn.log_softmax(forward(params, x))
        return -jnp.mean(jnp.take_along_axis(logits, y[:, None], axis=1))

    def step(state, batch):
        params, m, v, t = state
        grads = jax.grad(loss)(params, *batch)
        t = t + 1
        m = jax.tree.map(lambda m, g: 0.9 * m + 0.1 * g, m, grads)
        v = jax.tree.map(lambda v, g: 0.999 * v + 0.001 * g * g, v, grads)
        scale = 1e-3 * jnp.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
        params = jax.tree.map(lambda p, m, v: p - scale * m / (jnp.sqrt(v) + 1e-7), params, m, v)
        return (params, m, v, t), None

    train = jax.jit(lambda state: jax.lax.scan(step, state, (xs, ys))[0], donate_argnums=0)
    moments = [jax.tree.map(jnp.zeros_like, params) for _ in range(2)]
    state = jax.block_until_ready(train((params, *moments, jnp.float32(0))))  # compile + warm-up
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        state = train(state)
        done += 16
        if done % 256 == 0:
            jax.block_until_ready(state)
    jax.block_until_ready(state)
    return done / (time.perf_counter() - start)


def time_jax_tfapp(workload, seconds):
    """tfapp's JAX loop fed as `tfapp-train --backend=jax` feeds in-memory arrays (the rows on the device,
    `tfapp.engines.jax_engine.device_table`; tf.data hands over blocks of row indices), with autotune's choice."""
    import keras
    import pipelines
    from tfapp import autotune, jax_loop
    from tfapp.engines import jax_engine
    model, optimizer = build_model(workload), keras.optimizers.Adam(1e-3)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
    x, y = arrays(workload)
    table = jax_engine.device_table({"x": x, "y": y}, lambda rows: (rows["x"], rows["y"]), augment=None)
    data = pipelines.index_blocks({"x": x, "y": y}, BATCH, seed=0)
    iterator, block = iter(data), int(data.element_spec.shape[0])

    def make_trainer(jit):
        return jax_loop.JaxTrainer(model, optimizer, loss, lambda: [], BATCH, block, jit, table=table)

    jit = jax_engine.jit_rule("auto", model, "cpu")[0]
    trainer, sizes = make_trainer(jit), autotune.LoopSizeFromSpeed()
    trainer.train(iterator, 1)  # compile, as the first loop of a run
    warm_up = time.perf_counter()
    while time.perf_counter() - warm_up < 1.0:  # the run's first loops choose the loop size
        loop_start = time.perf_counter()
        trainer.train(iterator, sizes.size)
        sizes.observe(sizes.size, time.perf_counter() - loop_start)
    CHOICE.update({"jit_compile": jit, "steps_per_loop": sizes.size})
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        trainer.train(iterator, sizes.size)
        done += sizes.size
    return done / (time.perf_counter() - start)


def child(workload, runner, seconds):
    if runner == "jax_fit":
        return time_fit(workload, seconds, 1)
    if runner == "jax_fit_spe32":
        return time_fit(workload, seconds, 32)
    if runner == "jax_bare":
        return time_jax_bare(workload, seconds)
    if runner == "jax_tfapp":
        return time_jax_tfapp(workload, seconds)
    if runner == "fit":
        return time_fit(workload, seconds, 1)
    if runner == "fit_spe32":
        return time_fit(workload, seconds, 32)
    if runner == "hand_loop":
        return time_hand_loop(workload, seconds)
    if runner == "tfapp_n32":
        return time_tfapp(workload, seconds, "default", 32, False)
    if runner == "tfapp_auto":
        return time_tfapp(workload, seconds, "default", "auto", None)
    if runner == "tfapp_onedevice":
        return time_tfapp(workload, seconds, "one_device", 32, False)
    if runner == "tfapp_bf16":
        return time_tfapp(workload, seconds, "default", 32, False, policy="mixed_bfloat16")
    if runner == "tfapp_precision_auto":
        return time_tfapp(workload, seconds, "default", 32, False, policy="auto")
    return time_tfapp(workload, seconds, "mirrored", 32, False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workloads", default="mlp,cnn")
    parser.add_argument("--runners", default=",".join(RUNNERS))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=5.0, help="timed seconds per run, after warm-up")
    parser.add_argument("--pipeline", choices=("batches", "examples"), default="batches",
                        help="whole batches per element (default) or examples batched one by one")
    parser.add_argument("--data", choices=("random", "digits28"), default="random",
                        help="random batches timed for --seconds (default), or scikit-learn's digits resized to "
                             "28x28: every runner trains --steps steps and reports its test accuracy")
    parser.add_argument("--steps", type=int, default=600, help="--data=digits28: steps per runner")
    parser.add_argument("--child", nargs=2, metavar=("WORKLOAD", "RUNNER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    global PIPELINE, DATA, STEPS
    PIPELINE, DATA, STEPS = args.pipeline, args.data, args.steps
    if args.child:
        print(json.dumps({"steps_per_s": child(*args.child, args.seconds), **CHOICE}))
        return
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": root}
    results, accuracies = {}, {}
    for round_index in range(args.rounds):
        for workload in args.workloads.split(","):
            for runner in args.runners.split(","):  # alternating: every runner once per round
                command = [sys.executable, __file__, "--child", workload, runner, f"--seconds={args.seconds}",
                           f"--pipeline={args.pipeline}", f"--data={args.data}", f"--steps={args.steps}"]
                backend = {"KERAS_BACKEND": "jax" if runner.startswith("jax") else "tensorflow"}
                out = subprocess.run(command, capture_output=True, text=True, env={**env, **backend})
                if out.returncode:
                    print(json.dumps({"workload": workload, "runner": runner, "error": out.stderr[-500:]}))
                    continue
                measured = json.loads(out.stdout.strip().splitlines()[-1])
                speed = measured.pop("steps_per_s")
                results.setdefault(workload, {}).setdefault(runner, []).append(speed)
                if measured.get("test_accuracy") is not None:
                    accuracies.setdefault(workload, {}).setdefault(runner, []).append(measured["test_accuracy"])
                print(json.dumps({"workload": workload, "runner": runner, "round": round_index,
                                  "steps_per_s": round(speed, 1), **measured}), flush=True)
    for workload, by_runner in results.items():
        medians = {runner: statistics.median(speeds) for runner, speeds in by_runner.items()}
        best_fit = max((v for k, v in medians.items() if k.startswith("fit")), default=float("nan"))
        summary = {"workload": workload, "median_steps_per_s": {k: round(v, 1) for k, v in medians.items()}}
        if accuracies.get(workload):
            summary["median_test_accuracy"] = {k: round(statistics.median(v), 4)
                                               for k, v in accuracies[workload].items()}
        for runner, speed in medians.items():
            if runner.startswith("tfapp") or runner == "hand_loop":
                summary[f"{runner}/fit"] = round(speed / medians.get("fit", float("nan")), 2)
                summary[f"{runner}/best_fit"] = round(speed / best_fit, 2)
        if "jax_tfapp" in medians:  # the JAX engine's targets: >= 0.9x the bare loop, >= 5x Keras fit on JAX
            for other in ("jax_bare", "jax_fit", "jax_fit_spe32", "tfapp_auto"):
                if other in medians:
                    summary[f"jax_tfapp/{other}"] = round(medians["jax_tfapp"] / medians[other], 2)
        print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
