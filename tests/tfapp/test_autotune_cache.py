"""The autotune cache: a repeated command reuses the measured choice and gets identical metrics; measuring
leaves no trace; a corrupt cache is rewritten; a run slower than promised marks its entry stale; --autotune=measure
measures again."""
import json
import os

import numpy as np
import pytest

from tests.conftest import read_report, run_cli
from tfapp import autotune, autotune_cache, local_cache, run
from tfapp import config as config_lib


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    path = tmp_path / "cache"
    monkeypatch.setenv("TFAPP_CACHE_DIR", str(path))
    return path


def _run(tmp_path, name, **values):
    values = {"train_steps": 60, "eval_every": 30, **values}
    config = config_lib.Config(task="digits", model="cnn", strategy="default", export=False,
                               model_dir=str(tmp_path / name), **values).resolved()
    experiment = run.prepare(config)
    return run.train(experiment), experiment.model.get_weights()


def test_measuring_leaves_no_trace(tmp_path, cache_dir, monkeypatch):
    """A run that measures every XLA setting (budget forced open), then trains, ends bit for bit where a run
    given the same choice without measuring ends: weights, optimizer, Dropout's RNG and data order untouched."""
    # A budget that pays for both XLA compiles on any CPU (FRACTION × 60 planned steps / the probe's speed was once
    # 100 × 60 / ~200 = 30 s, less than a loaded CI took for one compile: XLA True was left untried), the fewest
    # timed rounds (autotune.MIN_ROUNDS).
    monkeypatch.setattr(autotune, "FRACTION", 1e9)
    monkeypatch.setattr(autotune, "COMPILE_FACTOR", 0.0)
    one_round = autotune._round_robin
    monkeypatch.setattr(autotune, "_round_robin", lambda trainers, iterator, steps, deadline: one_round(
        trainers, iterator, steps, deadline=0.0))
    measured, measured_weights = _run(tmp_path, "measured", autotune_seconds=600.0)
    record = measured["autotune"]
    assert record["source"] == "measured" and record["untried"] == []
    assert {str(m["jit_compile"]) for m in record["measurements"]} == {"False", "True", "block"}
    choice = record["choice"]
    fixed, fixed_weights = _run(tmp_path, "fixed", jit_compile=str(choice["jit_compile"]).lower(),
                                steps_per_loop=str(choice["steps_per_loop"]))
    assert fixed["autotune"]["source"] == "fixed"
    assert measured["final_metrics"] == fixed["final_metrics"]
    for a, b in zip(measured_weights, fixed_weights):
        np.testing.assert_array_equal(a, b)


def test_the_same_command_twice_reuses_the_choice_and_repeats_the_metrics(tmp_path, cache_dir):
    args = ["--task=digits", "--model=mlp", "--train_steps=300", "--eval_every=100", "--noexport"]
    env = {"TFAPP_CACHE_DIR": str(cache_dir)}
    for name in ("first", "second"):
        out = run_cli([f"--model_dir={tmp_path / name}", *args], env=env)
        assert out.returncode == 0, out.stderr[-2000:]
    first, second = read_report(str(tmp_path / "first")), read_report(str(tmp_path / "second"))
    assert first["autotune"]["source"] == "measured" and second["autotune"]["source"] == "cache"
    assert first["autotune"]["choice"] == second["autotune"]["choice"]
    assert first["final_metrics"] == second["final_metrics"]
    assert second["startup"]["autotune_s"] < 0.5 and set(second["startup"]) >= {
        "imports_s", "data_load_s", "model_build_s", "autotune_s", "first_step_s", "time_to_first_step_s"}


def test_corrupt_cache_is_rewritten_stale_entries_and_measure_measure_again(tmp_path, cache_dir, monkeypatch):
    first, _ = _run(tmp_path, "a")
    path = first["autotune"]["cache_file"]
    assert os.path.dirname(path) == str(cache_dir / "autotune")
    with open(path, "w") as f:
        f.write("{not json")
    again, _ = _run(tmp_path, "b")
    assert again["autotune"]["source"] == "measured" and isinstance(local_cache.read_json(path), dict)
    assert _run(tmp_path, "c")[0]["autotune"]["source"] == "cache"
    assert _run(tmp_path, "d", autotune="measure")[0]["autotune"]["source"] == "measured"
    # A run far slower than the entry promised marks it stale: the next run measures again. Only loops after the
    # run's background work (FLOPs count, plot warm-up) are judged; on a loaded 2-core CI that work outlasted
    # most of a 600-step run, so the run is longer and the bar to judge lower than a real run's.
    monkeypatch.setattr(autotune_cache, "JUDGE_SECONDS", 0.3)
    entry = local_cache.read_json(path)
    entry["steps_per_second"] *= 100
    local_cache.write_json(path, entry)
    slow, _ = _run(tmp_path, "e", train_steps=1200, eval_every=600)
    assert slow["autotune"]["source"] == "cache" and slow["autotune"]["stale"] is True, slow["autotune"]
    assert local_cache.read_json(path)["stale"] is True
    assert _run(tmp_path, "f")[0]["autotune"]["source"] == "measured"


def test_an_entry_that_left_xla_untried_is_measured_again_by_a_run_that_can_pay_for_it():
    entry = {"steps_per_second": 100.0, "trace_seconds": 0.5, "untried": ["True"]}
    key = {"k": 1}
    local_cache.write_json(autotune_cache.file_for(key), {**entry, "key": key, "choice": {
        "jit_compile": False, "steps_per_loop": 16}})
    assert autotune_cache.lookup(key, planned_steps=100, budget_seconds=3.0) is not None   # ~0.1 s of budget
    assert autotune_cache.lookup(key, planned_steps=100_000, budget_seconds=3.0) is None   # 3 s >= 0.5 s + 3 x 0.5 s
    short = round(1.8 / autotune.FRACTION * 100)  # the steps whose budget is 1.8 s at 100 steps/s
    assert autotune_cache.lookup(key, planned_steps=short, budget_seconds=3.0) is not None  # 1.8 s < 2 s
    # The same command again: a budget within 2x of the one that left XLA untried reuses the entry
    local_cache.write_json(autotune_cache.file_for(key), {**entry, "key": key, "budget_seconds": 2.5, "choice": {
        "jit_compile": False, "steps_per_loop": 16}})
    assert autotune_cache.lookup(key, planned_steps=100_000, budget_seconds=3.0) is not None
    assert autotune_cache.lookup(key, planned_steps=100_000, budget_seconds=6.0) is None


def test_cache_writes_are_atomic_files(tmp_path):
    path = str(tmp_path / "x" / "entry.json")
    assert local_cache.write_json(path, {"a": 1})
    assert json.load(open(path)) == {"a": 1} and os.listdir(tmp_path / "x") == ["entry.json"]
    assert local_cache.read_json(str(tmp_path / "missing.json"), "default") == "default"


def test_a_promise_from_the_probe_alone_goes_stale_only_when_far_off(cache_dir):
    """A promise that is the median of round-robin loops goes stale >20% below it; one from the ~50 ms probe alone
    (no other setting timed) moves that much with the load, so only >50% below it."""
    path = autotune_cache.file_for({"k": 2})

    def stale_after(measurements, achieved):
        local_cache.write_json(path, {"choice": {"jit_compile": False, "steps_per_loop": 16},
                                      "measurements": measurements, "stale": False})
        return autotune_cache.check_speed(path, 100.0, achieved, timed_seconds=2.0), local_cache.read_json(path)

    probe = [{"jit_compile": False, "steps_per_loop": 16, "probe": True, "steps_per_second": 100.0}]
    rounds = [{"jit_compile": False, "steps_per_loop": 16, "loops": 5, "steps_per_second": 100.0},
              {"jit_compile": "block", "steps_per_loop": 16, "loops": 5, "steps_per_second": 60.0}]
    flagged, entry = stale_after(probe, 70.0)
    assert not flagged and entry["stale"] is False
    flagged, entry = stale_after(probe, 40.0)
    assert flagged and entry["stale"] and "40.0 steps/s" in entry["stale_because"]
    assert stale_after(rounds, 70.0)[0] and not stale_after(rounds, 85.0)[0]
    assert not autotune_cache.check_speed(path, 100.0, 10.0, timed_seconds=0.5)  # too short a run to judge
