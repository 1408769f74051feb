"""Seconds from the command to a result: `tfapp-train` against the plain Keras script a user would write instead.

    python benchmarks/turnaround.py                        # 3 rounds x 4 workloads x 3 runners, ~6 minutes
    python benchmarks/turnaround.py --rounds=5 --workloads=digits/cnn

Every run is a fresh process, and the runners alternate within each round (a, b, c, a, b, c, …):
- `keras`: the script below (`PLAIN_SCRIPT`), as a user would write it: the same data split, batch and number of
  steps, the task's model function and preprocessing, then `model.compile`, `model.fit(steps_per_epoch=…)`,
  `model.evaluate` on the test split and `model.export`.
- `tfapp_cold`: `tfapp-train` with defaults and an empty autotune cache (`TFAPP_CACHE_DIR` = a new folder; the
  measured matmul peak is copied in, as it is measured once per machine).
- `tfapp_warm`: the same command again on the cache the cold run left.
Per run: wall seconds (parent process, from spawn to exit), seconds to the first optimizer step (from the top of
the script / `tfapp-train`'s start) and the final main metric on the test split. Then the medians and the ratios
cold/keras and warm/keras. Targets (issue #15): cold <= 1.0x, warm <= 0.9x, metrics not worse beyond noise.
The machine is shared and noisy: only ratios within one invocation mean anything.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKLOADS = {  # name -> (task, model, extra tfapp-train flags)
    "digits/cnn": ("digits", "cnn", []),
    "digits/mlp": ("digits", "mlp", ["--train_steps=2000"]),
    "text_classification/bag": ("text_classification", "bag", []),
    "forecasting/lstm": ("forecasting", "lstm", []),
}

PLAIN_SCRIPT = r'''
import json, sys, time
START = time.time()
import keras
import tensorflow as tf
import pipelines
from tfapp import config as config_lib, tasks
task_name, model_name, train_steps, export_dir = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
config = config_lib.Config(task=task_name, model=model_name, train_steps=train_steps).resolved()
task = tasks.get_task(task_name)
source = pipelines.load(config.data, config.load_options())
spec = {**source.spec, **(task.adapt(source, config) if task.adapt else {})}
preprocess = task.preprocessor(spec)
keras.utils.set_random_seed(config.seed)
train = source.splits["train"]().cache().shuffle(10_000, seed=config.seed).repeat()
test = source.splits["test"]()
if task.vectorized_preprocess:
    train = train.batch(config.batch_size, drop_remainder=True).map(preprocess, num_parallel_calls=tf.data.AUTOTUNE)
    test = test.batch(config.batch_size).map(preprocess)
else:
    train = train.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE).batch(config.batch_size, drop_remainder=True)
    test = test.map(preprocess).batch(config.batch_size)
model = task.models[model_name](config, spec)
loss = task.loss()
loss = type(loss).from_config({**loss.get_config(), "reduction": "sum_over_batch_size"})
model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=loss, metrics=task.metrics())

class FirstStep(keras.callbacks.Callback):
    seconds = None
    def on_train_batch_end(self, batch, logs=None):
        if FirstStep.seconds is None:
            FirstStep.seconds = time.time() - START

model.fit(train.prefetch(tf.data.AUTOTUNE), epochs=1, steps_per_epoch=train_steps, verbose=0, callbacks=[FirstStep()])
results = model.evaluate(test, verbose=0, return_dict=True)
model.export(export_dir, verbose=False)
print(json.dumps({"first_step_s": FirstStep.seconds, "metric": results[task.main_metric]}))
'''


def _train_steps(workload):
    task, model, flags = WORKLOADS[workload]
    for flag in flags:
        if flag.startswith("--train_steps="):
            return int(flag.split("=")[1])
    sys.path.insert(0, REPO)
    from tfapp import tasks  # the task's default number of steps, without importing TensorFlow twice per run
    return tasks.get_task(task).defaults["train_steps"]


def _spawn(command, env):
    start = time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env={**os.environ, **env})
    wall = time.perf_counter() - start
    if out.returncode != 0:
        raise RuntimeError(f"{command[:4]} failed: {out.stderr.strip().splitlines()[-3:]}")
    return wall, out.stdout


def run_keras(workload, directory):
    task, model, _ = WORKLOADS[workload]
    wall, stdout = _spawn([sys.executable, "-c", PLAIN_SCRIPT, task, model, str(_train_steps(workload)),
                           os.path.join(directory, "export")], {"TF_CPP_MIN_LOG_LEVEL": "2"})
    result = json.loads(stdout.strip().splitlines()[-1])
    return {"wall_s": wall, "first_step_s": result["first_step_s"], "metric": result["metric"]}


def run_tfapp(workload, directory, cache_dir):
    task, model, flags = WORKLOADS[workload]
    model_dir = os.path.join(directory, "run")
    wall, _ = _spawn([sys.executable, "-m", "tfapp.cli.train", f"--task={task}", f"--model={model}",
                      f"--model_dir={model_dir}", *flags], {"TFAPP_CACHE_DIR": cache_dir})
    with open(os.path.join(model_dir, "report.json")) as f:
        report = json.load(f)
    return {"wall_s": wall, "first_step_s": report["time_to_first_step_s"],
            "metric": report["final_metrics"][report["main_metric"]], "autotune": report["autotune"]["source"],
            "choice": report["autotune"].get("choice"), "autotune_s": report["startup"].get("autotune_s")}


def _peak_cache():
    """The machine's measured matmul peak (measured here first if the user's tfapp cache has none), copied into
    each fresh cache: it is measured once per machine, and it is not what this benchmark tests."""
    sys.path.insert(0, REPO)
    import strategies
    from tfapp import flops, local_cache, report
    flops.device_peak("float32", None, report.device_description(strategies.get_strategy("default")))
    return local_cache.path(flops.CACHE_FILE)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    args = parser.parse_args()
    workloads = args.workloads.split(",")
    peak = _peak_cache()
    results = {(w, r): [] for w in workloads for r in ("keras", "tfapp_cold", "tfapp_warm")}
    for round_index in range(args.rounds):
        for workload in workloads:
            with tempfile.TemporaryDirectory() as directory:
                cache_dir = os.path.join(directory, "cache")
                os.makedirs(cache_dir)
                if os.path.exists(peak):
                    shutil.copy(peak, cache_dir)
                for runner in ("keras", "tfapp_cold", "tfapp_warm"):
                    run_dir = os.path.join(directory, runner)
                    result = run_keras(workload, run_dir) if runner == "keras" else \
                        run_tfapp(workload, run_dir, cache_dir)
                    results[(workload, runner)].append(result)
                    print(json.dumps({"round": round_index, "workload": workload, "runner": runner,
                                      **{k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}}),
                          flush=True)
    print(f"\nmedians over {args.rounds} rounds (wall s / first step s / main metric), ratios of wall to keras")
    print(f"{'workload':26} {'keras':>22} {'tfapp cold':>22} {'tfapp warm':>22} {'cold/keras':>11} {'warm/keras':>11}")
    for workload in workloads:
        medians = {runner: {key: statistics.median(r[key] for r in results[(workload, runner)])
                            for key in ("wall_s", "first_step_s", "metric")}
                   for runner in ("keras", "tfapp_cold", "tfapp_warm")}
        cells = [f"{m['wall_s']:6.2f} / {m['first_step_s']:5.2f} / {m['metric']:.4f}" for m in medians.values()]
        keras_wall = medians["keras"]["wall_s"]
        print(f"{workload:26} {cells[0]:>22} {cells[1]:>22} {cells[2]:>22} "
              f"{medians['tfapp_cold']['wall_s'] / keras_wall:10.2f}x {medians['tfapp_warm']['wall_s'] / keras_wall:10.2f}x")


if __name__ == "__main__":
    main()
