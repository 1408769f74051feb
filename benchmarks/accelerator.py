"""The accelerator table: `tfapp-train --backend=jax` on whatever device JAX sees, beside nanoGPT on the same device.

    python benchmarks/accelerator.py                                   # the full table (a GPU or TPU: ~5 minutes)
    python benchmarks/accelerator.py --quick                           # a dry run: few steps (this CPU: ~4 minutes)
    python benchmarks/accelerator.py --nanogpt=$HOME/nanoGPT --nanogpt_python=$HOME/torch-venv/bin/python

Rows (each a fresh `tfapp-train` process with its own empty tfapp cache, so every figure is a first run's; only a
measured matmul peak, where the device has no published one, is carried from the first run to the others):
  digits/mlp          3,000 steps, no export: the loop's steps/s and what the start-up costs
  digits/cnn          600 steps with its SavedModel export: the export's share of the end of the run
  lm gpt float32      the language model's defaults (gpt, 16 x 64, 1,000 steps) with --target_metric=1.88
  lm gpt bfloat16     the same, --mixed_precision=bfloat16
  lm gpt auto         the same, --mixed_precision=auto (report.json says what it chose and why)
  gpt_small auto      nanoGPT's GPU size (6 x 6 x 384, batch 64 x 256), 600 steps, --mixed_precision=auto
With --nanogpt (a karpathy/nanoGPT checkout; its data is prepared from tfapp's copy of the text) two more rows,
run by --nanogpt_python (an interpreter with torch): its CPU recipe (4 x 4 x 128, 2,000 iterations: ~val 1.88) and
its shakespeare_char GPU recipe uncompiled (6 x 6 x 384, 64 x 256, dropout 0.2, 5,000 iterations), on the device
torch sees. Prints one JSON line per run, then a markdown table for docs/performance.md. `--quick` cuts every
run to a few steps to check the script itself (its figures mean nothing).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lm_speed  # noqa: E402  (the nanoGPT runner)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LM = ["--task=language_model", "--target_metric=1.88", "--noexport"]
ROWS = {
    "digits/mlp": ["--task=digits", "--model=mlp", "--train_steps=3000", "--noexport"],
    "digits/cnn + export": ["--task=digits", "--model=cnn"],
    "lm gpt float32": LM,
    "lm gpt bfloat16": [*LM, "--mixed_precision=bfloat16"],
    "lm gpt auto": [*LM, "--mixed_precision=auto"],
    "gpt_small 64x256 auto": ["--task=language_model", "--model=gpt_small", "--batch_size=64", "--sequence_length=256",
                              "--train_steps=600", "--eval_every=150", "--mixed_precision=auto", "--noexport"],
}
QUICK = {"digits/mlp": ["--train_steps=300"], "digits/cnn + export": ["--train_steps=100"],
         "lm gpt float32": ["--train_steps=40", "--eval_every=20"],
         "lm gpt bfloat16": ["--train_steps=40", "--eval_every=20"],
         "lm gpt auto": ["--train_steps=40", "--eval_every=20"],
         "gpt_small 64x256 auto": ["--train_steps=4", "--eval_every=4"]}
NANOGPT_GPU = ["config/train_shakespeare_char.py", "--compile=False", "--log_interval=10"]  # its README's GPU run


def run_tfapp(name, flags, directory):
    """One tfapp-train run on the JAX engine; the row's figures from its report.json."""
    model_dir = os.path.join(directory, "run")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TFAPP_CACHE_DIR": os.path.join(directory, "cache"),
           "KERAS_BACKEND": "jax"}
    out = subprocess.run([sys.executable, "-m", "tfapp.cli.train", "--backend=jax", f"--model_dir={model_dir}", *flags],
                         capture_output=True, text=True, env=env, cwd=REPO)
    if out.returncode != 0:
        return {"run": name, "error": (out.stderr.strip().splitlines() or ["?"])[-1][:300]}
    with open(os.path.join(model_dir, "report.json")) as f:
        report = json.load(f)
    config, startup, phases = report["config"], report["startup"], report["phases_s"]
    tokens = config["batch_size"] * config["sequence_length"] if config["task"] == "language_model" else None
    speed = report["steps_per_second"]
    return {"run": name, "device": report["device"], "steps_per_s": speed and round(speed, 1),
            "tokens_per_s": round(speed * tokens) if speed and tokens else None,
            "wall_s": round(report["wall_time_s"], 1), "first_step_s": round(report["time_to_first_step_s"], 1),
            "imports_s": round(startup.get("imports_s", 0), 1), "build_s": round(startup["model_build_s"], 1),
            "compile_s": round(startup["first_step_s"], 1), "precision_s": round(startup.get("precision_s", 0), 1),
            "loops_s": round(phases["loops"], 1), "eval_s": round(phases["eval"], 1),
            "finish_s": round(phases["finish"], 1), "to_1.88_s": report["time_to_target_s"] and round(
                report["time_to_target_s"], 1),
            "metric": f"{report['main_metric']} {report['final_metrics'][report['main_metric']]:.4f}",
            "mfu": report["mfu"] and round(report["mfu"], 3), "peak": report["peak_flops_method"],
            "precision": report["mixed_precision"], "precision_reason": (report.get("precision") or {}).get("reason")}


def run_nanogpt(name, checkout, python, quick):
    """nanoGPT's CPU recipe or its GPU recipe on the device torch sees (cuda if it has one)."""
    probe = subprocess.run([python, "-c", "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')"],
                           capture_output=True, text=True)
    device = probe.stdout.strip() or "cpu"
    if name == "nanoGPT CPU recipe":
        recipe = [arg if not arg.startswith("--device") else f"--device={device}" for arg in lm_speed.NANOGPT_RECIPE]
        tokens = 12 * 64
    else:
        recipe, tokens = [*NANOGPT_GPU, f"--device={device}"], 64 * 256
    if quick:
        recipe += ["--max_iters=20", "--lr_decay_iters=20", "--eval_interval=10", "--eval_iters=2"]
    with tempfile.TemporaryDirectory() as out_dir:
        row = lm_speed.run_nanogpt(checkout, python, out_dir, recipe, tokens)
    return {"run": name, "device": f"torch {device}", "tokens_per_s": row["tokens_per_s"], "wall_s": row["wall_s"],
            "to_1.88_s": row["seconds_to_1.88"], "metric": f"val loss {row['val_loss']} (best {row['best_val_loss']} "
            f"at iteration {row['best_at_iteration']}, {row['best_at_s']} s)"}


COLUMNS = [("run", "run"), ("steps/s", "steps_per_s"), ("tokens/s", "tokens_per_s"), ("wall s", "wall_s"),
           ("to first step s (imports / build / compile)", None), ("s to val ≤ 1.88", "to_1.88_s"),
           ("eval s / loops s", None), ("finish s", "finish_s"), ("final", "metric"), ("MFU", "mfu"),
           ("precision", "precision")]


def markdown(rows):
    lines = ["| " + " | ".join(title for title, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        cells = []
        for title, key in COLUMNS:
            if title.startswith("to first step"):
                cells.append(f"{row['first_step_s']} ({row['imports_s']} / {row['build_s']} / {row['compile_s']})"
                             if "first_step_s" in row else "—")
            elif title.startswith("eval s"):
                cells.append(f"{row['eval_s']} / {row['loops_s']}" if "eval_s" in row else "—")
            else:
                value = row.get(key)
                cells.append("—" if value is None else str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default=",".join(ROWS), help="comma-separated row names (default: all)")
    parser.add_argument("--quick", action="store_true", help="a few steps per run: checks the script, not speed")
    parser.add_argument("--nanogpt", help="a karpathy/nanoGPT checkout: adds its two Shakespeare recipes")
    parser.add_argument("--nanogpt_python", default=sys.executable, help="a Python with torch for nanoGPT")
    args = parser.parse_args()
    rows, peaks = [], None
    for name in args.runs.split(","):
        with tempfile.TemporaryDirectory() as directory:
            if peaks:  # a measured peak (a device tfapp.peaks does not know) is measured once, not in every run
                os.makedirs(os.path.join(directory, "cache"))
                with open(os.path.join(directory, "cache", "peak_flops.json"), "w") as f:
                    f.write(peaks)
            rows.append(run_tfapp(name, ROWS[name] + (QUICK[name] if args.quick else []), directory))
            path = os.path.join(directory, "cache", "peak_flops.json")
            if os.path.exists(path):
                with open(path) as f:
                    peaks = f.read()
        print(json.dumps(rows[-1]), flush=True)
    if args.nanogpt:
        for name in ("nanoGPT CPU recipe", "nanoGPT GPU recipe (uncompiled)"):
            rows.append(run_nanogpt(name, args.nanogpt, args.nanogpt_python, args.quick))
            print(json.dumps(rows[-1]), flush=True)
    devices = sorted({row["device"] for row in rows if row.get("device")})
    print(f"\ndevice(s): {', '.join(devices)}" + (" (--quick: figures of a dry run)" if args.quick else ""))
    print(markdown([row for row in rows if "error" not in row]))
    for row in rows:
        if row.get("precision_reason"):
            print(f"- {row['run']}: {row['precision_reason']}")
        if row.get("peak"):
            print(f"- {row['run']} MFU peak: {row['peak']}")
        if "error" in row:
            print(f"- {row['run']}: failed: {row['error']}")


if __name__ == "__main__":
    main()
