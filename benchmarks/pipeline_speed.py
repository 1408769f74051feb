"""Input pipelines against the training loop: examples/s each source's pipeline delivers alone, examples/s the
loop consumes on the same task, and the run's `input_wait_fraction`, each measurement in its own process.

    python benchmarks/pipeline_speed.py                 # all cases
    python benchmarks/pipeline_speed.py --cases=images,csv --rounds=2

Cases (data made in a temporary folder from data that ships offline):
  images    image_folder task on 1797 PNG files (sklearn digits, 10 classes, upscaled to 32×32), --image_size=32
  csv       regression task on a 20,000-row CSV (8 numeric + 1 categorical column), model mlp
  npz       digits task on the embedded digits arrays
  tfrecord  digits task on the same digits written by `tfapp-data convert --format=tfrecord`
Prints one JSON line per case: pipeline_examples_per_s (batches taken 64 at a time inside one tf.function, as the
training loop takes them: a Python `next()` per batch would measure Python), loop_examples_per_s, their ratio, and
the loop run's input_wait_fraction (blocked in `next()`) and input_handover_fraction (wait + slicing a batch out
of a block of in-memory batches). Targets on this CPU: ratio >= 3 for images and csv, input wait <= 5%.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def make_cases(scratch):
    import numpy as np
    from tests import fixtures
    images = fixtures.digit_image_folder(os.path.join(scratch, "images"), classes=range(10), size=32)
    rng = np.random.default_rng(0)
    rows = ["a,b,c,d,e,f,g,h,city,price"]
    for _ in range(20_000):
        values = rng.normal(size=8)
        city = rng.choice(["paris", "lyon", "nice"])
        rows.append(",".join(f"{v:.4f}" for v in values) + f",{city},{values.sum() + (city == 'paris'):.4f}")
    with open(os.path.join(scratch, "table.csv"), "w") as f:
        f.write("\n".join(rows) + "\n")
    subprocess.run([sys.executable, "-m", "tfapp.cli.data", "convert", "--data=embedded:digits",
                    f"--out={scratch}/tfrecord"], cwd=ROOT, check=True, capture_output=True)
    return {
        "images": ["--task=image_folder", f"--data=images:{images}", "--image_size=32", "--model=cnn"],
        "csv": ["--task=regression", f"--data=csv:{scratch}/table.csv", "--label_column=price", "--model=mlp"],
        "npz": ["--task=digits", "--data=embedded:digits"],
        "tfrecord": ["--task=digits", f"--data=tfrecord:{scratch}/tfrecord/*.tfrecord"],
    }


def pipeline_speed(flags, seconds):
    """Child: examples/s of the training pipeline alone, built as tfapp.run.prepare builds it."""
    from absl import flags as absl_flags
    import pipelines
    from tfapp import flags as tfapp_flags
    from tfapp import run, tasks
    tfapp_flags.define_flags()
    absl_flags.FLAGS(["pipeline_speed", *flags])
    config = tfapp_flags.config_from_flags()
    task = tasks.get_task(config.task).for_model(config.model)
    source = run.load_source(config, task)
    dataset = pipelines.train_dataset(source.splits["train"], task.preprocessor(source.spec), config.batch_size,
                                      config.seed,
                                      cache=config.cache, vectorized=task.vectorized_preprocess,
                                      arrays=(source.arrays or {}).get("train"))
    import tensorflow as tf

    @tf.function
    def drain(iterator, n):
        """Takes n batches inside one graph, as the training loop does (no Python call per batch)."""
        rows = tf.constant(0)
        for _ in tf.range(n):
            rows += tf.shape(tf.nest.flatten(next(iterator))[0])[0]
        return rows

    iterator = iter(dataset)
    drain(iterator, tf.constant(source.num_examples["train"] // config.batch_size + 2))  # an epoch: fills caches
    rows, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        rows += int(drain(iterator, tf.constant(64)))
    return rows / (time.perf_counter() - start)


def loop_speed(flags, scratch, name):
    model_dir = os.path.join(scratch, f"run-{name}-{time.time_ns()}")
    out = subprocess.run([sys.executable, "-m", "tfapp.cli.train", f"--model_dir={model_dir}", "--noexport",
                          "--steps_per_loop=16", "--jit_compile=false", *flags], cwd=ROOT, capture_output=True,
                         text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if out.returncode:
        raise RuntimeError(out.stderr[-1000:])
    with open(os.path.join(model_dir, "report.json")) as f:
        report = json.load(f)
    return report["examples_per_second"], report["input_wait_fraction"], report["input_handover_fraction"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default="images,csv,npz,tfrecord")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.child:
        print(json.dumps({"examples_per_s": pipeline_speed(rest, args.seconds)}))
        return
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ROOT}
    with tempfile.TemporaryDirectory() as scratch:
        cases = make_cases(scratch)
        for name in args.cases.split(","):
            pipe, loop, wait, handover = [], [], [], []
            for _ in range(args.rounds):
                out = subprocess.run([sys.executable, __file__, "--child", "1", f"--seconds={args.seconds}",
                                      *cases[name]], capture_output=True, text=True, env=env, cwd=ROOT)
                if out.returncode:
                    raise RuntimeError(out.stderr[-1000:])
                pipe.append(json.loads(out.stdout.strip().splitlines()[-1])["examples_per_s"])
                speed, input_wait, input_handover = loop_speed(cases[name], scratch, name)
                loop.append(speed)
                wait.append(input_wait)
                handover.append(input_handover)
            p, l = statistics.median(pipe), statistics.median(loop)
            print(json.dumps({"case": name, "pipeline_examples_per_s": round(p), "loop_examples_per_s": round(l),
                              "pipeline/loop": round(p / l, 2), "input_wait_fraction": round(statistics.median(wait), 4),
                              "input_handover_fraction": round(statistics.median(handover), 4)}),
                  flush=True)


if __name__ == "__main__":
    main()
