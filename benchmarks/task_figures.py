"""Every task's default figure, on the validation split (which chose the kept checkpoint) and on the test split (read
once, at the end, on it): the README's task table, each row with the command that gives it.

    python benchmarks/task_figures.py                      # every task's default (~10 minutes on 2 cores)
    python benchmarks/task_figures.py --tasks=text_classification/bigru,forecasting/gru     # other models
    python benchmarks/task_figures.py --tasks=digits,regression --backend=jax

Each run is a fresh `tfapp-train` with the task's defaults (seed 0). Tasks whose default data needs files or a
download get generated data of `tests/fixtures.py` (image folder of digit PNGs, noisy signals, low-rank ratings),
full size. Prints one JSON line per run, then a markdown table.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

RUNS = {  # name -> (task, extra flags); models beyond the default are the README's other rows
    "digits": ("digits", []),
    "image_classification": ("image_classification", []),
    "image_folder": ("image_folder", []),
    "regression": ("regression", []),
    "classification": ("classification", []),
    "signal_classification": ("signal_classification", []),
    "text_classification": ("text_classification", []),
    "token_classification": ("token_classification", []),
    "forecasting": ("forecasting", []),
    "language_model": ("language_model", ["--noexport"]),
    "recommendation": ("recommendation", []),
    # the README's other models of a task
    "regression/mlp": ("regression", ["--model=mlp"]),
    "signal_classification/gru": ("signal_classification", ["--model=gru"]),
    "signal_classification/mlp": ("signal_classification", ["--model=mlp"]),
    "text_classification/bigru": ("text_classification", ["--model=bigru"]),
    "text_classification/transformer": ("text_classification", ["--model=transformer"]),
    "token_classification/transformer": ("token_classification", ["--model=transformer"]),
    "forecasting/gru": ("forecasting", ["--model=gru"]),
    "forecasting/cnn": ("forecasting", ["--model=cnn"]),
    "recommendation/two_tower": ("recommendation", ["--model=two_tower"]),
}
DEFAULTS = [name for name in RUNS if "/" not in name]


def data_flags(task, directory):
    """--data (and what goes with it) for tasks whose default is not offline: the fixtures' generated data."""
    from tests import fixtures
    if task == "image_folder":
        return ["--data=images:" + fixtures.digit_image_folder(os.path.join(directory, "folder"), size=24),
                "--image_size=24"]
    if task == "signal_classification":
        return ["--data=npz:" + fixtures.noisy_signals(os.path.join(directory, "signals.npz"))]
    if task == "recommendation":
        return ["--data=csv:" + fixtures.low_rank_ratings(os.path.join(directory, "ratings.csv")),
                "--item_column=item_id", "--label_column=rating"]
    return []


def run(name, backend):
    task, extra = RUNS[name]
    with tempfile.TemporaryDirectory() as directory:
        flags = [f"--task={task}", *extra, *data_flags(task, directory)]
        command = [sys.executable, "-m", "tfapp.cli.train", f"--backend={backend}",
                   f"--model_dir={directory}/run", *flags]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TFAPP_CACHE_DIR": os.path.join(directory, "cache")}
        out = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env)
        if out.returncode:
            return {"run": name, "error": (out.stderr.strip().splitlines() or ["?"])[-1][:300]}
        with open(os.path.join(directory, "run", "report.json")) as f:
            report = json.load(f)
    metric = report["main_metric"]
    shown = [f for f in flags if not f.startswith("--data=")]  # generated data lives in a temporary folder
    return {"run": name, "model": report["config"]["model"], "metric": metric,
            "validation": round(report["validation"]["metrics"][metric], 4),
            "test": round(report["final_metrics"][metric], 4), "kept_step": report["kept_step"],
            "steps": report["steps"], "test_metrics": {k: round(v, 4) for k, v in report["final_metrics"].items()},
            "baselines": report["baselines"],
            "command": "tfapp-train " + " ".join(shown) + (" (+ generated data)" if len(shown) < len(flags) else "")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(DEFAULTS), help=f"runs among {', '.join(RUNS)}")
    parser.add_argument("--backend", default="tensorflow")
    args = parser.parse_args()
    rows = []
    for name in args.tasks.split(","):
        rows.append(run(name, args.backend))
        print(json.dumps(rows[-1]), flush=True)
    print("\n| task | model | main metric | validation (kept) | test | kept step / steps | command |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        if "error" in row:
            print(f"| {row['run']} | failed: {row['error']} | | | | | |")
            continue
        print(f"| {row['run']} | {row['model']} | {row['metric']} | {row['validation']} | {row['test']} | "
              f"{row['kept_step']} / {row['steps']} | `{row['command']}` |")


if __name__ == "__main__":
    main()
