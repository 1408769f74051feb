"""Steps per second of the same task on the TensorFlow path and on `--backend=jax`, each run a tfapp-train
process, alternating, read from report.json (the first loop / epoch, i.e. compilation, excluded on both).

    python benchmarks/backend_speed.py                          # digits/cnn, 2 rounds
    python benchmarks/backend_speed.py --rounds=3 --task=digits --model=mlp

Runners: tf_default (one device, our loop, --steps_per_loop=16, XLA measured), tf_mirrored2 (MirroredStrategy
over two logical CPUs, no XLA: it cannot run there), jax_1 (Keras fit on JAX, one CPU device,
steps_per_execution=16, XLA always) and jax_2 (the same under keras.distribution.DataParallel over two forced
CPU devices, `XLA_FLAGS=--xla_force_host_platform_device_count=2`). Prints one JSON line per run, then the
medians and ratios to tf_default. Same data, batch, steps and model on every runner; the machine is shared and
noisy: only ratios within one invocation mean anything.
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


def run_once(runner, task, model, steps, directory):
    flags, env = RUNNERS[runner]
    model_dir = os.path.join(directory, runner)
    command = [sys.executable, "-m", "tfapp.cli.train", f"--task={task}", f"--model={model}", f"--model_dir={model_dir}",
               f"--train_steps={steps}", f"--eval_every={steps // 4}", "--steps_per_loop=16", "--noexport", *flags]
    out = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **env})
    if out.returncode != 0:
        raise RuntimeError(f"{runner} failed: {out.stderr.strip().splitlines()[-1:]}")
    with open(os.path.join(model_dir, "report.json")) as f:
        report = json.load(f)
    return report["steps_per_second"], report["final_metrics"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--task", default="digits")
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--steps", type=int, default=800)
    args = parser.parse_args()
    speeds = {runner: [] for runner in RUNNERS}
    for round_index in range(args.rounds):
        for runner in RUNNERS:
            with tempfile.TemporaryDirectory() as directory:
                speed, metrics = run_once(runner, args.task, args.model, args.steps, directory)
            speeds[runner].append(speed)
            print(json.dumps({"task": args.task, "model": args.model, "runner": runner, "round": round_index,
                              "steps_per_s": round(speed, 1), "final_metrics": metrics}), flush=True)
    medians = {runner: statistics.median(values) for runner, values in speeds.items()}
    print("median steps/s: " + ", ".join(f"{r} {v:.1f}" for r, v in medians.items()))
    print("ratio to tf_default: " + ", ".join(f"{r} {v / medians['tf_default']:.2f}x" for r, v in medians.items()))


if __name__ == "__main__":
    main()
