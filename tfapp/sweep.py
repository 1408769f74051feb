"""Grid sweeps: every combination of a few flag values, one run directory each, at most K at a time, then the
comparison. Re-running the same sweep skips finished runs and resumes interrupted ones (their checkpoints).

    tfapp-sweep --task=digits --grid="learning_rate=1e-3,3e-3;batch_size=64,128" --parallel=2
"""
import itertools
import os
import subprocess
import sys
import time

import tensorflow as tf

from tfapp import compare, report


def parse_grid(text, valid_flags):
    """"a=1,2;b=x" -> [("a", ["1", "2"]), ("b", ["x"])]; ValueError naming a bad part or flag."""
    grid = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, sep, values = part.partition("=")
        name = name.strip()
        if not sep or not values.strip():
            raise ValueError(f"--grid: {part!r} is not FLAG=V1,V2,…")
        if name not in valid_flags:
            raise ValueError(f"--grid: {name!r} is not a tfapp-train flag; valid: {', '.join(sorted(valid_flags))}")
        grid.append((name, [v.strip() for v in values.split(",") if v.strip()]))
    if not grid:
        raise ValueError("--grid is empty; e.g. --grid='learning_rate=1e-3,3e-3;batch_size=64,128'")
    return grid


def combinations(grid):
    """[{flag: value}, …] over the cartesian product, in a stable order."""
    names = [name for name, _ in grid]
    return [dict(zip(names, values)) for values in itertools.product(*(values for _, values in grid))]


def run_name(values):
    return "_".join(f"{k}-{v}" for k, v in values.items()).replace("/", "-")


def _launch(values, sweep_dir, fixed_args):
    model_dir = report.join(sweep_dir, run_name(values))
    log = open(os.path.join(sweep_dir, "logs", run_name(values) + ".log"), "w")
    args = [sys.executable, "-m", "tfapp.cli.train", f"--model_dir={model_dir}", *fixed_args,
            *(f"--{k}={v}" for k, v in values.items())]
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env={**os.environ}), model_dir, log


def run_sweep(grid, sweep_dir, fixed_args, parallel=1, echo=print):
    """Runs what is not finished yet (K at a time); returns (finished run dirs, {run name: exit status})."""
    os.makedirs(os.path.join(sweep_dir, "logs"), exist_ok=True)
    todo, done, failed = [], [], {}
    for values in combinations(grid):
        model_dir = report.join(sweep_dir, run_name(values))
        if tf.io.gfile.exists(report.join(model_dir, "report.json")):
            echo(f"skip (finished): {run_name(values)}")
            done.append(model_dir)
        else:
            todo.append(values)
    running = []
    while todo or running:
        while todo and len(running) < parallel:
            values = todo.pop(0)
            echo(f"start: {run_name(values)}")
            running.append((*_launch(values, sweep_dir, fixed_args), run_name(values)))
        time.sleep(0.2)
        for item in list(running):
            process, model_dir, log, name = item
            if process.poll() is not None:
                running.remove(item)
                log.close()
                if process.returncode == 0 and tf.io.gfile.exists(report.join(model_dir, "report.json")):
                    done.append(model_dir)
                    echo(f"done: {name}")
                else:
                    failed[name] = process.returncode
                    echo(f"FAILED ({process.returncode}): {name}; see {sweep_dir}/logs/{name}.log")
    return done, failed


def write_hparams_config(sweep_dir, grid, main_metric):
    """TensorBoard HParams dashboard over the sweep: `tensorboard --logdir=SWEEP_DIR`."""
    from tensorboard.plugins.hparams import api as hp
    with tf.summary.create_file_writer(report.join(sweep_dir, "hparams")).as_default():
        hp.hparams_config(hparams=[hp.HParam(name, hp.Discrete(values)) for name, values in grid],
                          metrics=[hp.Metric(main_metric, group="validation",
                                             display_name=f"validation {main_metric}")])


def sweep(grid, sweep_dir, fixed_args, parallel, main_metric, echo=print):
    done, failed = run_sweep(grid, sweep_dir, fixed_args, parallel, echo)
    write_hparams_config(sweep_dir, grid, main_metric)
    text = compare.compare(sorted(done), sweep_dir)[1] if done else "no finished runs"
    return text, failed
