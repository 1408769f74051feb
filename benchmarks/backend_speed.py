"""Steps per second of the same task on the TensorFlow path and on `--backend=jax`, each run a tfapp-train
process, alternating, read from report.json (the first loop / epoch, i.e. compilation, excluded on both).

    python benchmarks/backend_speed.py                          # digits/cnn, 2 rounds
    python benchmarks/backend_speed.py --rounds=3 --model=mlp --steps=2000 --runners=tf_default,jax_1

Runners: tf_default (one device, tfapp's TF loop), tf_mirrored2 (MirroredStrategy over two logical CPUs, no XLA:
it cannot run there), jax_1 (tfapp's JAX loop, one CPU device) and jax_2 (the same under
keras.distribution.DataParallel over two forced CPU devices, `XLA_FLAGS=--xla_force_host_platform_device_count=2`).
`--steps_per_loop=auto` (default) lets each runner's autotune choose (XLA setting and loop size; a fresh autotune
cache per invocation, so round 0 measures and later rounds reuse the choice, as a user's second run does).
Prints one JSON line per run, then the medians and ratios to tf_default. Same data, batch, steps and model on
every runner; the machine is shared and noisy: only ratios within one invocation mean anything.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

RUNNERS = {
    "tf_default": ([], {}),
    "tf_mirrored2": (["--strategy=mirrored", "--num_cpu_devices=2"], {}),
    "jax_1": (["--backend=jax"], {"XLA_FLAGS": "--xla_force_host_platform_device_count=1"}),
    "jax_2": (["--backend=jax"], {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}),
}


def run_once(runner, task, model, steps, directory, steps_per_loop, cache_dir):
    flags, env = RUNNERS[runner]
    model_dir = os.path.join(directory, runner)
    command = [sys.executable, "-m", "tfapp.cli.train", f"--task={task}", f"--model={model}", f"--model_dir={model_dir}",
               f"--train_steps={steps}", f"--eval_every={steps // 4}", f"--steps_per_loop={steps_per_loop}", "--noexport",
               *flags]
    out = subprocess.run(command, capture_output=True, text=True,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TFAPP_CACHE_DIR": cache_dir, **env})
    if out.returncode != 0:
        raise RuntimeError(f"{runner} failed: {out.stderr.strip().splitlines()[-1:]}")
    with open(os.path.join(model_dir, "report.json")) as f:
        report = json.load(f)
    return report["steps_per_second"], report["final_metrics"], report["autotune"].get("choice")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--task", default="digits")
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--steps_per_loop", default="auto")
    parser.add_argument("--runners", default=",".join(RUNNERS))
    args = parser.parse_args()
    runners = args.runners.split(",")
    speeds = {runner: [] for runner in runners}
    cache_dir = tempfile.mkdtemp(prefix="tfapp-bench-cache-")
    for round_index in range(args.rounds):
        for runner in runners:
            with tempfile.TemporaryDirectory() as directory:
                speed, metrics, choice = run_once(runner, args.task, args.model, args.steps, directory,
                                                  args.steps_per_loop, cache_dir)
            speeds[runner].append(speed)
            print(json.dumps({"task": args.task, "model": args.model, "runner": runner, "round": round_index,
                              "steps_per_s": round(speed, 1), "choice": choice, "final_metrics": metrics}),
                  flush=True)
    medians = {runner: statistics.median(values) for runner, values in speeds.items()}
    print("median steps/s: " + ", ".join(f"{r} {v:.1f}" for r, v in medians.items()))
    if "tf_default" in medians:
        print("ratio to tf_default: " + ", ".join(f"{r} {v / medians['tf_default']:.2f}x" for r, v in medians.items()))


if __name__ == "__main__":
    main()
