"""float32 against mixed bfloat16 (and float16) on a real task: test accuracy and steps/s, each run its own process.

    python benchmarks/precision.py                       # digits, float32 vs bfloat16, 2 rounds alternating
    python benchmarks/precision.py --precisions=none,bfloat16,float16 --rounds=3 --extra="--model=mlp"

Runs `tfapp-train` with `--mixed_precision=…` and fixed `--steps_per_loop=16 --jit_compile=false` (so only the
precision differs), prints one JSON line per run and a summary with medians and the speed ratio to float32.
bfloat16 pays off on CPUs with AVX512-BF16/AMX (this one has AVX512-BF16) and on TPUs; elsewhere it is slower.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", default="digits")
    parser.add_argument("--precisions", default="none,bfloat16")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--extra", default="", help="more tfapp-train flags, space separated")
    args = parser.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": root}
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        for round_index in range(args.rounds):
            for precision in args.precisions.split(","):
                model_dir = os.path.join(scratch, f"{precision}-{round_index}")
                command = [sys.executable, "-m", "tfapp.cli.train", f"--task={args.task}", f"--model_dir={model_dir}",
                           f"--mixed_precision={precision}", "--steps_per_loop=16", "--jit_compile=false",
                           "--noexport", *args.extra.split()]
                out = subprocess.run(command, capture_output=True, text=True, env=env, cwd=root)
                if out.returncode:
                    print(json.dumps({"precision": precision, "error": out.stderr[-500:]}))
                    continue
                with open(os.path.join(model_dir, "report.json")) as f:
                    report = json.load(f)
                row = {"precision": precision, "round": round_index, "steps_per_s": round(report["steps_per_second"], 1),
                       **{k: round(v, 4) for k, v in report["final_metrics"].items()}}
                results.setdefault(precision, []).append(row)
                print(json.dumps(row), flush=True)
    base = statistics.median(r["steps_per_s"] for r in results.get("none", [])) if "none" in results else None
    for precision, rows in results.items():
        speed = statistics.median(r["steps_per_s"] for r in rows)
        metrics = {k: statistics.median(r[k] for r in rows) for k in rows[0] if k not in ("precision", "round", "steps_per_s")}
        print(json.dumps({"precision": precision, "median_steps_per_s": speed, "median_metrics": metrics,
                          "speed_vs_float32": round(speed / base, 2) if base else None}))


if __name__ == "__main__":
    main()
