"""Autotune measures every candidate on the real step, restores the weights, and picks the fastest (ties: no XLA,
fewer steps per loop); the choice and every measurement land in report.json."""
import numpy as np
import pytest

import pipelines
import strategies
from tfapp import autotune, loop, run, tasks
from tfapp import config as config_lib


def test_choose_prefers_fastest_then_no_xla():
    def m(jit, speed):
        return {"jit_compile": jit, "steps_per_loop": 16, "steps_per_second": speed}
    assert autotune._choose([m(False, 100), m(True, 300)])["jit_compile"] is True
    assert autotune._choose([m(False, 299), m(True, 300), {"jit_compile": "block", "failed": "x"}]) == m(False, 299)
    assert autotune._choose([m("block", 300), m(True, 295), m(False, 200)]) == m(True, 295)


def test_loop_size_is_the_largest_loop_within_half_a_second():
    assert autotune.loop_size(5000) == 256 and autotune.loop_size(300) == 64 and autotune.loop_size(100) == 16
    assert autotune.loop_size(40) == 16 and autotune.loop_size(30) == 4
    assert autotune.loop_size(1) == 1  # slow steps: one per loop, so progress and signals stay responsive


class _Clock:
    """A stand-in for the `time` module whose clock moves only when a fake trainer runs a loop."""

    def __init__(self):
        self.now = 100.0

    def perf_counter(self):
        return self.now


class _FakeTrainer:
    """A trainer whose loop takes `seconds` on `clock`: round-robin's bookkeeping without a model or noise."""

    def __init__(self, clock, seconds):
        self.clock, self.seconds, self.loops = clock, seconds, 0

    def train(self, iterator, steps):
        self.loops += 1
        self.clock.now += self.seconds


def test_round_robin_takes_medians_of_several_loops_and_drops_the_slow(monkeypatch):
    """Even with the budget already spent, each setting runs MIN_ROUNDS loops (one loop each is a coin flip at the
    margin); one below DROP × the best after the first round runs no more."""
    clock = _Clock()
    monkeypatch.setattr(autotune, "time", clock)
    trainers = {False: _FakeTrainer(clock, 0.010), "block": _FakeTrainer(clock, 0.008),
                True: _FakeTrainer(clock, 0.100)}
    speeds = autotune._round_robin(trainers, iter(()), steps=1, deadline=0.0)
    assert autotune.MIN_ROUNDS >= 3
    assert len(speeds[False]) == len(speeds["block"]) == autotune.MIN_ROUNDS
    assert speeds[True] == [pytest.approx(10.0)] and trainers[True].loops == 1
    # with budget left, rounds go on until the deadline
    clock.now, deadline = 0.0, 0.95
    speeds = autotune._round_robin({False: _FakeTrainer(clock, 0.1)}, iter(()), steps=1, deadline=deadline)
    assert len(speeds[False]) == 10


def _digits_mlp():
    task = tasks.get_task("digits")
    source = pipelines.load(task.default_data)
    config = config_lib.Config(model="mlp", strategy="default").resolved(smoke=True)
    strategy = strategies.get_strategy("default")
    model, optimizer = run.build_model(config, task, source.spec), run.build_optimizer(config)
    data = pipelines.train_dataset(source.splits["train"], task.preprocess, config.batch_size, seed=0)

    def make_trainer(jit):
        return loop.Trainer(strategy, model, optimizer, task.loss(), task.metrics, config.batch_size, jit)

    return model, optimizer, data, make_trainer


def test_autotune_measures_the_settings_round_robin_and_restores_variables():
    model, optimizer, data, make_trainer = _digits_mlp()
    assert not optimizer.built  # as in a real run: Adam's moments appear only when the first trainer is made
    model_before = [v.numpy().copy() for v in model.variables]
    result = autotune.autotune(make_trainer, iter(data), [False, True], budget_seconds=20.0, planned_steps=None,
                               variables=lambda: model.variables + optimizer.variables)
    assert all(np.array_equal(a, b.numpy()) for a, b in zip(model_before, model.variables))
    assert len(optimizer.variables) > 2 and int(optimizer.iterations.numpy()) == 0
    assert all(not np.any(v.numpy()) for v in optimizer.variables if "momentum" in v.path or "velocity" in v.path)
    assert sorted(str(m["jit_compile"]) for m in result.measurements) == ["False", "True"]
    assert all(m["steps_per_second"] > 0 and m["loops"] >= autotune.MIN_ROUNDS for m in result.measurements)
    # each setting's first step (the trace; with XLA, the compile) is recorded: what COMPILE_FACTOR is checked on
    first = {m["jit_compile"]: m["first_step_seconds"] for m in result.measurements}
    assert first[False] == result.trace_seconds and first[True] > 0
    assert result.trainer.jit_compile == result.jit_compile and result.untried == []
    # the run's loop size is taken at the chosen setting's speed (the settings were compared on the probe's)
    assert result.steps_per_loop == autotune.loop_size(result.steps_per_second)
    assert len({m["steps_per_loop"] for m in result.measurements}) == 1  # compared on loops of one size
    assert result.to_json()["choice"] == {"jit_compile": result.jit_compile, "steps_per_loop": result.steps_per_loop}


def test_a_short_run_measures_little_and_compiles_no_xla():
    """The budget is ~15% of the planned run: 40 planned steps pay for no XLA compile, only the probe runs."""
    model, optimizer, data, make_trainer = _digits_mlp()
    result = autotune.autotune(make_trainer, iter(data), [False, True, "block"], budget_seconds=20.0,
                               planned_steps=40, variables=lambda: model.variables + optimizer.variables)
    assert result.untried == [True, "block"] and result.jit_compile is False
    assert [m.get("probe") for m in result.measurements] == [True]
    assert result.seconds < 5.0


def test_jit_candidates_follow_the_strategy():
    default = strategies.get_strategy("default")
    assert autotune.jit_candidates("auto", default) == [False, True]
    assert autotune.jit_candidates("false", default) == [False]
    assert autotune.jit_candidates("true", default) == [True]
    assert autotune.jit_candidates("auto", default, blocks=True) == [False, "block", True]
    assert autotune.jit_candidates("block", default, blocks=True) == ["block"]
    assert autotune.jit_candidates("block", default) == [True]  # no blocks: XLA per step
    # a model measured to win under XLA (Task.xla_models): auto takes XLA per step; an explicit choice still rules
    assert autotune.jit_candidates("auto", default, xla_known_best=True) == [True]
    assert autotune.jit_candidates("false", default, xla_known_best=True) == [False]


def test_the_language_model_gpt_trains_under_xla_by_default():
    from tfapp import tasks
    assert "gpt" in tasks.get_task("language_model").xla_models
    assert "lstm" not in tasks.get_task("language_model").xla_models


def test_auto_run_records_autotune_in_report(tmp_path, monkeypatch):
    monkeypatch.setenv("TFAPP_CACHE_DIR", str(tmp_path / "cache"))
    config = config_lib.Config(model="mlp", strategy="default", model_dir=str(tmp_path / "r"),
                               export=False).resolved(smoke=True)
    report = run.run(config)
    assert report["autotune"]["choice"] == {"jit_compile": report["jit_compile"],
                                            "steps_per_loop": report["steps_per_loop"]}
    assert report["autotune"]["source"] == "measured" and report["autotune"]["measurements"]
    assert report["final_metrics"]["accuracy"] > 0.3  # trained after measuring (smoke size: 20 steps)
    assert report["flops_per_step"] > 0 and 0 < report["mfu"] < 1.5
    assert report["peak_flops_per_second"] > report["achieved_flops_per_second"] * 0.5


def test_a_candidate_that_cannot_compile_is_recorded_and_skipped():
    """Strings inside a model (a lookup layer) cannot enter XLA: that candidate fails with a one-line reason in
    the record and the run goes on with the others."""
    import keras
    import tensorflow as tf
    strategy = strategies.get_strategy("default")
    words = keras.Input(shape=(), dtype="string")
    ids = keras.layers.StringLookup(vocabulary=["a", "b"], output_mode="one_hot")(words)
    model = keras.Model(words, keras.layers.Dense(2)(ids))
    optimizer = keras.optimizers.Adam()
    data = tf.data.Dataset.from_tensors((tf.constant(["a", "b", "c", "a"]), tf.constant([0, 1, 1, 0]))).repeat()
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)

    def make_trainer(jit):
        return loop.Trainer(strategy, model, optimizer, loss, lambda: [], 4, jit)

    result = autotune.autotune(make_trainer, iter(data), [False, True], budget_seconds=10.0,
                               variables=lambda: model.variables + optimizer.variables)
    failed = [m for m in result.measurements if "failed" in m]
    assert [m["jit_compile"] for m in failed] == [True] and "\n" not in failed[0]["failed"]
    assert result.jit_compile is False


def test_loop_size_from_the_runs_own_loops_only_grows():
    """The JAX engine's steps per loop: no probe, the run's loops time the step (autotune.LoopSizeFromSpeed)."""
    sizes = autotune.LoopSizeFromSpeed()
    assert sizes.size == 4  # the loop after the first (compiling) one
    sizes.observe(4, 0.04)  # 100 steps/s: 16 steps last 0.16 s
    assert sizes.size == 16
    sizes.observe(16, 0.04)  # 400 steps/s: 256 steps would last 0.64 s, 64 fit
    assert sizes.size == 64
    sizes.observe(64, 6.4)  # a slower loop (the machine was busy) does not shrink it
    assert sizes.size == 64
