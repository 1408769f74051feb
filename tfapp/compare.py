"""Compare finished runs: one table (task, the settings that differ, the main validation metric that ranks them,
the test metrics, speed, time to target), written as CSV, and `comparison.png` with every run's validation curve of
the main metric on shared axes.

    tfapp-compare runs/digits-*            # prints the table, writes ./comparison.csv and ./comparison.png
"""
import csv
import io
import json
import os

import tensorflow as tf

from tfapp import plots, report

ALWAYS = ("model", "batch_size", "learning_rate")  # settings shown even when equal across runs
VARYING_IGNORED = {"model_dir", "seed"}


def load_run(run_dir):
    """report.json plus the eval curve of the main metric; raises ValueError for a run without a report."""
    path = report.join(run_dir, "report.json")
    if not tf.io.gfile.exists(path):
        raise ValueError(f"{run_dir}: no report.json (not finished, or not a tfapp run directory)")
    with tf.io.gfile.GFile(path) as f:
        content = json.load(f)
    metric = content.get("main_metric") or "accuracy"
    with tf.io.gfile.GFile(report.join(run_dir, "metrics.csv")) as f:
        curve = [(int(r["step"]), float(r["value"])) for r in csv.DictReader(f)
                 if r["split"] in ("validation", "eval") and r["metric"] == metric]  # "eval": runs before validation
    return {"dir": run_dir, "name": os.path.basename(run_dir.rstrip("/")), "report": content, "metric": metric,
            "curve": curve}


def _mode(run):
    return "min" if run["metric"] in ("loss", "mae", "mse", "rmse") else "max"


def validation_value(run):
    """The run's main metric on the validation split (of its kept checkpoint): what ranks runs. The test split
    only reports (a run written before the validation split had only its test figures)."""
    validation = (run["report"].get("validation") or {}).get("metrics") or run["report"]["final_metrics"]
    return validation.get(run["metric"], float("nan"))


def sort_runs(runs):
    """Best first by the (shared) main metric on validation."""
    def key(run):
        value = validation_value(run)
        return value if _mode(run) == "min" else -value
    return sorted(runs, key=key)


def rows(runs):
    """Table rows (dicts) with the settings that differ between runs plus ALWAYS."""
    configs = [run["report"]["config"] for run in runs]
    varying = [k for k in sorted(configs[0]) if k not in VARYING_IGNORED
               and len({json.dumps(c.get(k)) for c in configs}) > 1]
    keys = list(dict.fromkeys([*ALWAYS, *varying]))
    table = []
    for run in runs:
        r = run["report"]
        row = {"run": run["name"], "task": r["task"], **{k: r["config"].get(k) for k in keys}}
        row[f"validation_{run['metric']}"] = round(validation_value(run), 4)
        row.update({f"test_{k}": round(v, 4) for k, v in r["final_metrics"].items()})
        row.update({"steps": r["steps"], "steps_per_s": _round(r.get("steps_per_second"), 1),
                    "mfu": _round(r.get("mfu"), 3), "wall_s": _round(r.get("wall_time_s"), 1),
                    "time_to_target_s": _round(r.get("time_to_target_s"), 1)})
        table.append(row)
    return table


def _round(value, digits):
    return None if value is None else round(value, digits)


def format_table(table):
    columns = list(dict.fromkeys(k for row in table for k in row))
    cells = [[str(row.get(c, "")) for c in columns] for row in table]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join(lines)


def write_csv(table, path):
    columns = list(dict.fromkeys(k for row in table for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(table)
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(buffer.getvalue())


def plot(runs, path):
    """Eval main metric against step, every run on one axes, legend in table order (best first)."""
    figure, axis = plots.figure(8, 4.5)
    for run in runs:
        if run["curve"]:
            steps, values = zip(*run["curve"])
            axis.plot(steps, values, marker="o", markersize=3, label=f"{run['name']} ({validation_value(run):.4f})")
    metric = runs[0]["metric"]
    axis.set_xlabel("optimizer step")
    axis.set_ylabel(f"validation {metric}")
    axis.set_title(f"{runs[0]['report']['task']}: validation {metric}, best first")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    plots.save_figure(figure, path)


def compare(run_dirs, output_dir="."):
    """Loads, sorts, prints nothing; writes comparison.csv/.png into output_dir; returns (table, text)."""
    runs = sort_runs([load_run(d) for d in run_dirs])
    table = rows(runs)
    tf.io.gfile.makedirs(output_dir)
    write_csv(table, report.join(output_dir, "comparison.csv"))
    plot(runs, report.join(output_dir, "comparison.png"))
    return table, format_table(table)
