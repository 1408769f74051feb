"""Sweeps (grid, skip finished, resume interrupted), the comparison table and picture, and time to target."""
import csv
import os

import pytest

from tests.conftest import read_report, run_cli
from tfapp import config as config_lib
from tfapp import run, sweep


def test_parse_grid_and_combinations():
    grid = sweep.parse_grid("learning_rate=1e-3,3e-3; batch_size=64,128", {"learning_rate", "batch_size"})
    assert grid == [("learning_rate", ["1e-3", "3e-3"]), ("batch_size", ["64", "128"])]
    combos = sweep.combinations(grid)
    assert len(combos) == 4 and combos[1] == {"learning_rate": "1e-3", "batch_size": "128"}
    assert sweep.run_name(combos[1]) == "learning_rate-1e-3_batch_size-128"
    with pytest.raises(ValueError, match="'lr' is not a tfapp-train flag; valid: batch_size, learning_rate"):
        sweep.parse_grid("lr=1", {"learning_rate", "batch_size"})
    with pytest.raises(ValueError, match="is not FLAG=V1,V2"):
        sweep.parse_grid("learning_rate", {"learning_rate"})


def test_sweep_runs_compares_skips_finished_and_resumes_interrupted(tmp_path):
    sweep_dir = tmp_path / "sweep"
    # --jit_compile=false: XLA's compiles would only slow the runs down; autotune has its own tests.
    args = ["--task=digits", "--grid=model=cnn,mlp", "--parallel=2", f"--sweep_dir={sweep_dir}", "--smoke",
            "--noexport", "--checkpoint_every=10", "--jit_compile=false"]
    first = run_cli(args, module="tfapp.cli.sweep")
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    with open(sweep_dir / "comparison.csv") as f:
        table = list(csv.DictReader(f))
    assert sorted(row["run"] for row in table) == ["model-cnn", "model-mlp"]
    # best first on validation, whatever the test split says; the test figures are reported beside it
    assert float(table[0]["validation_accuracy"]) >= float(table[1]["validation_accuracy"])
    assert all(0 <= float(row["test_accuracy"]) <= 1 for row in table)
    assert float(table[0]["validation_accuracy"]) == round(read_report(str(sweep_dir / table[0]["run"]))[
        "validation"]["metrics"]["accuracy"], 4)
    assert (sweep_dir / "comparison.png").stat().st_size > 10_000
    assert os.listdir(sweep_dir / "hparams")
    # Make one run look interrupted after its step-10 checkpoint; the other stays finished.
    os.remove(sweep_dir / "model-mlp" / "report.json")
    again = run_cli(args, module="tfapp.cli.sweep")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "skip (finished): model-cnn" in again.stdout and "start: model-mlp" in again.stdout
    assert read_report(str(sweep_dir / "model-mlp"))["resumed_at_step"] == 20  # its last checkpoint


@pytest.mark.slow  # 45 s; the sweep test compares runs too
def test_compare_cli_and_bad_run_dir(tmp_path):
    for name, model in (("a", "cnn"), ("b", "mlp")):
        assert run_cli([f"--model_dir={tmp_path / name}", "--smoke", "--noexport", f"--model={model}",
                        "--jit_compile=false"]).returncode == 0
    out = run_cli([str(tmp_path / "a"), str(tmp_path / "b"), f"--output_dir={tmp_path / 'cmp'}"],
                  module="tfapp.cli.compare")
    assert out.returncode == 0, out.stderr[-2000:]
    header = out.stdout.splitlines()[0].split()
    assert header[:3] == ["run", "task", "model"] and "time_to_target_s" in header and "mfu" in header
    assert (tmp_path / "cmp" / "comparison.png").exists()
    bad = run_cli([str(tmp_path / "nope")], module="tfapp.cli.compare")
    assert bad.returncode == 2 and "nope: no report.json" in bad.stderr.strip().splitlines()[-1]


def test_time_to_target(tmp_path):
    reached = run.run(config_lib.Config(model="mlp", strategy="default", export=False, target_metric=0.5,
                                        train_steps=40, eval_every=10, batch_size=32, steps_per_loop="5",
                                        jit_compile="false", model_dir=str(tmp_path / "a")).resolved())
    assert reached["step_to_target"] in (10, 20, 30, 40) and 0 < reached["time_to_target_s"] < reached["wall_time_s"]
    never = run.run(config_lib.Config(model="mlp", strategy="default", export=False, target_metric=1.01,
                                      train_steps=20, eval_every=10, batch_size=32, steps_per_loop="5",
                                      jit_compile="false", model_dir=str(tmp_path / "b")).resolved())
    assert never["time_to_target_s"] is None and never["step_to_target"] is None
