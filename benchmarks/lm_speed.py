"""Language model speed: tokens/s, MFU and seconds to a validation loss of 1.88 (nanoGPT's CPU baby-GPT figure) for
`tfapp-train --task=language_model` on the TensorFlow path (its XLA and bfloat16 choices) and on the JAX path.

    python benchmarks/lm_speed.py                         # every runner once
    python benchmarks/lm_speed.py --rounds=2 --runners=tf_auto,tf_xla

Each run is a fresh `tfapp-train` process with the task's defaults (gpt, batch 16 × 64 characters, Muon, XLA,
1,000 steps) and `--target_metric=1.88`, a fresh autotune cache per invocation; figures come from its report.json:
`time_to_target_s` (seconds from the command to the first evaluation at or below 1.88; evaluations every 175
steps, the task's default, so this is an upper bound), tokens/s = steps/s × batch × sequence length (steady
state, compilation excluded), MFU, final validation loss and the whole run's wall time. Runners:
  tf_auto   defaults (autotune decides XLA and steps per loop)
  tf_xla    --jit_compile=true
  tf_bf16   --mixed_precision=bfloat16 (AVX512-BF16 on this CPU)
  jax       --backend=jax
  nanogpt   nanoGPT's own train.py with its CPU recipe (README: block 64, batch 12, 4 x 4 x 128, 2,000 iterations,
            no dropout), the anchor: run only with --nanogpt=DIR (a checkout of karpathy/nanoGPT; its
            shakespeare_char data is prepared from tfapp's shipped copy of the text, so nothing is downloaded) and
            --nanogpt_python=PYTHON (an interpreter with torch and numpy: `pip install torch==2.13.0 numpy requests`
            in a venv of its own, not tfapp's). It evaluates 20 random batches every 250 iterations and ends near
            1.88 (the figure its README gives), so its anchor is its wall time from spawn to the end.
Ratios (seconds to 1.88 / nanoGPT's wall) only within one invocation: the machine is shared and noisy. Without
--nanogpt the table has no ratio (the issue's ~67 s was measured on another CPU).

    python benchmarks/lm_speed.py --nanogpt=$HOME/nanoGPT --nanogpt_python=$HOME/torch-venv/bin/python
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

RUNNERS = {"tf_auto": [], "tf_xla": ["--jit_compile=true"], "tf_bf16": ["--mixed_precision=bfloat16"],
           "jax": ["--backend=jax"]}
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NANOGPT_RECIPE = ["config/train_shakespeare_char.py", "--device=cpu", "--compile=False", "--eval_iters=20",
                  "--log_interval=1", "--block_size=64", "--batch_size=12", "--n_layer=4", "--n_head=4", "--n_embd=128",
                  "--max_iters=2000", "--lr_decay_iters=2000", "--dropout=0.0"]  # its README's CPU command
TARGET = 1.88


def run_once(runner, directory, cache_dir):
    model_dir = os.path.join(directory, runner)
    command = [sys.executable, "-m", "tfapp.cli.train", "--task=language_model", f"--model_dir={model_dir}",
               "--target_metric=1.88", "--noexport", *RUNNERS[runner]]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TFAPP_CACHE_DIR": cache_dir}
    out = subprocess.run(command, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{runner} failed: {out.stderr.strip().splitlines()[-1:]}")
    with open(os.path.join(model_dir, "report.json")) as f:
        report = json.load(f)
    tokens_per_step = report["config"]["batch_size"] * report["config"]["sequence_length"]
    return {"runner": runner, "tokens_per_s": round(report["steps_per_second"] * tokens_per_step),
            "mfu": round(report["mfu"], 3) if report["mfu"] else None,
            "seconds_to_1.88": report["time_to_target_s"] and round(report["time_to_target_s"], 1),
            "val_loss": round(report["final_metrics"]["loss"], 4), "wall_s": round(report["wall_time_s"], 1),
            "first_step_s": round(report["time_to_first_step_s"], 1), "choice": report["autotune"].get("choice")}


def run_nanogpt(directory, python, out_dir, recipe=NANOGPT_RECIPE, tokens_per_iteration=12 * 64):
    """nanoGPT's CPU recipe (or `recipe`) in a fresh process: seconds to its first val loss <= 1.88, its last and
    best val loss (and the iteration of the best), wall."""
    data = os.path.join(directory, "data", "shakespeare_char")
    if not os.path.exists(os.path.join(data, "train.bin")):
        shutil.copy(os.path.join(REPO, "pipelines", "data", "tinyshakespeare.txt"), os.path.join(data, "input.txt"))
        subprocess.run([python, "prepare.py"], cwd=data, check=True, capture_output=True)
    start = time.perf_counter()
    process = subprocess.Popen([python, "-u", "train.py", *recipe, f"--out_dir={out_dir}"], cwd=directory,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    to_target, val_loss, best, iteration_ms = None, None, (float("inf"), None, None), []
    for line in process.stdout:
        found = re.match(r"step (\d+): train loss [\d.]+, val loss ([\d.]+)", line)
        if found:
            val_loss = float(found.group(2))
            if val_loss < best[0]:
                best = (val_loss, int(found.group(1)), round(time.perf_counter() - start, 1))
            if to_target is None and val_loss <= TARGET:
                to_target = time.perf_counter() - start
        timing = re.match(r"iter (\d+): loss [\d.]+, time ([\d.]+)ms", line)
        if timing and int(timing.group(1)) > 0:
            iteration_ms.append(float(timing.group(2)))
    if process.wait() != 0:
        raise RuntimeError(f"nanoGPT failed (exit {process.returncode}); run it by hand in {directory}")
    wall = time.perf_counter() - start
    return {"runner": "nanogpt", "tokens_per_s": round(tokens_per_iteration * 1000 / statistics.median(iteration_ms)),
            "mfu": None, "seconds_to_1.88": to_target and round(to_target, 1), "val_loss": val_loss,
            "best_val_loss": best[0], "best_at_iteration": best[1], "best_at_s": best[2],
            "wall_s": round(wall, 1), "choice": None}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--runners", default=",".join(RUNNERS))
    parser.add_argument("--nanogpt", help="a karpathy/nanoGPT checkout: adds the nanogpt runner (the anchor)")
    parser.add_argument("--nanogpt_python", default=sys.executable, help="a Python with torch for nanoGPT")
    args = parser.parse_args()
    runners = (["nanogpt"] if args.nanogpt else []) + args.runners.split(",")
    cache_dir = tempfile.mkdtemp(prefix="tfapp-lm-cache-")
    results = {}
    for round_index in range(args.rounds):
        for runner in runners:  # alternating: nanogpt, tf_auto, …, nanogpt, tf_auto, …
            with tempfile.TemporaryDirectory() as directory:
                row = run_nanogpt(args.nanogpt, args.nanogpt_python, directory) if runner == "nanogpt" else \
                    run_once(runner, directory, cache_dir)
            results.setdefault(runner, []).append(row)
            print(json.dumps({"round": round_index, **row}), flush=True)
    anchor = statistics.median(r["wall_s"] for r in results["nanogpt"]) if args.nanogpt else None
    print(f"\nmedians over {args.rounds} round(s); anchor: nanoGPT's CPU recipe, wall "
          f"{anchor if anchor else 'not run (--nanogpt)'} s")
    print(f"{'runner':10} {'tokens/s':>9} {'MFU':>5} {'s to 1.88':>10} {'/ nanoGPT':>10} {'val loss':>9} {'wall s':>7}")
    for runner, rows in results.items():
        seconds = [r["seconds_to_1.88"] for r in rows if r["seconds_to_1.88"]]
        median = statistics.median(seconds) if seconds else None
        mfu = [r["mfu"] for r in rows if r["mfu"]]
        cells = [f"{statistics.median(r['tokens_per_s'] for r in rows):9.0f}",
                 f"{statistics.median(mfu):5.2f}" if mfu else f"{'':5}",
                 f"{median:10.1f}" if median else f"{'—':>10}",
                 f"{median / anchor:9.2f}x" if median and anchor else f"{'':10}",
                 f"{statistics.median(r['val_loss'] for r in rows):9.4f}",
                 f"{statistics.median(r['wall_s'] for r in rows):7.1f}"]
        print(f"{runner:10} {' '.join(cells)}", flush=True)


if __name__ == "__main__":
    main()
