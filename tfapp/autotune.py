"""`--jit_compile=auto` / `--steps_per_loop=auto`: measure the candidates on the real task, keep the fastest.

    tfapp-train --jit_compile=auto --steps_per_loop=auto --autotune_seconds=3   # see report.json["autotune"]

Keras decides XLA by a fixed rule (off on CPU, off under any strategy). On a CPU, XLA can halve a conv net's
throughput and speed up a small dense one, so we time it instead. Each candidate (XLA off / per step / per
block of in-memory batches × steps per loop)
runs real train steps on the real pipeline for a slice of `budget_seconds`; the model, optimizer and RNG
variables are snapshotted first and restored after, so measuring leaves no trace on training: the run then
starts from step 0 with the chosen setting and its own fresh iterator.
"""
import dataclasses
import time

import tensorflow as tf

STEPS_PER_LOOP_CANDIDATES = (1, 4, 16, 64)
TIE = 0.03  # within 3% of the fastest counts as a tie: prefer no XLA, then fewer steps per loop
JIT_ORDER = (False, True, "block")  # ties go to the earlier one


@dataclasses.dataclass
class AutotuneResult:
    trainer: object
    jit_compile: object  # False, True (XLA per step) or "block" (XLA per block of batches)
    steps_per_loop: int
    measurements: list
    seconds: float

    def to_json(self):
        return {"seconds": self.seconds, "measurements": self.measurements,
                "choice": {"jit_compile": self.jit_compile, "steps_per_loop": self.steps_per_loop}}


def jit_candidates(choice, strategy, blocks=False):
    """XLA settings worth measuring for `--jit_compile=choice` on `strategy`; `blocks`: the loop takes blocks of
    in-memory batches, so "block" (one XLA program per block) is a candidate too."""
    if choice in ("true", True):
        return [True]
    if choice in ("false", False):
        return [False]
    if choice == "block":
        return ["block" if blocks else True]
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return [True]  # TPUs only run compiled steps
    if strategy.num_replicas_in_sync > 1 and not tf.config.list_logical_devices("GPU"):
        return [False]  # one replica per logical CPU: XLA cannot reach the other devices' variables
    return [False, True, "block"] if blocks else [False, True]


def _snapshot(variables):
    return [tf.identity(v.value if hasattr(v, "value") else v) for v in variables]


def _restore(variables, values):
    for variable, value in zip(variables, values):
        variable.assign(value)


def _time_loops(trainer, iterator, steps_per_loop, seconds):
    """Steps/s over whole loops of `steps_per_loop` after one untimed warm-up loop; at least one timed loop."""
    trainer.train(iterator, steps_per_loop)
    steps, start = 0, time.perf_counter()
    while True:
        trainer.train(iterator, steps_per_loop)
        steps += steps_per_loop
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return steps / elapsed


def _one_line(error):
    text = getattr(error, "message", None) or str(error) or type(error).__name__
    return f"{type(error).__name__}: {text.strip().splitlines()[0][:300]}"


def _choose(measurements):
    timed = [m for m in measurements if "steps_per_second" in m]
    if not timed:
        raise RuntimeError(f"autotune: every candidate failed: {measurements}")
    best = max(m["steps_per_second"] for m in timed)
    ties = [m for m in timed if m["steps_per_second"] >= (1 - TIE) * best]
    return min(ties, key=lambda m: (JIT_ORDER.index(m["jit_compile"]), m["steps_per_loop"]))


def autotune(make_trainer, iterator, jit_candidates, spl_candidates=STEPS_PER_LOOP_CANDIDATES,
             budget_seconds=3.0, variables=lambda: []):
    """Measures every (jit, steps_per_loop) candidate within about `budget_seconds` (plus XLA compile time).

    make_trainer(jit) -> loop.Trainer sharing one model/optimizer; `iterator` is a throwaway iterator over the
    training data; `variables()` lists the model + optimizer variables to restore after measuring. It is called
    after the first trainer exists, i.e. once the optimizer has built its slots (Adam's moments must be restored
    too: stale moments with a reset step counter wreck training, e.g. a GRU stays at chance).
    """
    start = time.perf_counter()
    saved = None
    slice_seconds = budget_seconds / (len(jit_candidates) * len(spl_candidates))
    measurements, trainers = [], {}
    for jit in jit_candidates:
        compile_start = time.perf_counter()
        trainer = make_trainer(jit)
        if saved is None:
            tracked = variables()
            saved = _snapshot(tracked)
        try:
            trainer.train(iterator, 1)  # trace + compile
        except (tf.errors.OpError, ValueError, TypeError, NotImplementedError) as error:
            if len(jit_candidates) == 1:
                raise
            # e.g. an op XLA cannot compile: this candidate is out, the run goes on with the others
            measurements.append({"jit_compile": jit, "failed": _one_line(error)})
            continue
        trainers[jit] = trainer
        compile_seconds = time.perf_counter() - compile_start
        last_speed = None
        for steps_per_loop in spl_candidates:
            if last_speed and steps_per_loop / last_speed > 2 * slice_seconds and measurements:
                break  # one loop alone would blow the budget: larger loops are not measured
            last_speed = _time_loops(trainer, iterator, steps_per_loop, slice_seconds)
            measurements.append({"jit_compile": jit, "steps_per_loop": steps_per_loop,
                                 "steps_per_second": last_speed, "compile_seconds": compile_seconds})
    _restore(tracked, saved)
    choice = _choose(measurements)
    return AutotuneResult(trainers[choice["jit_compile"]], choice["jit_compile"], choice["steps_per_loop"],
                          measurements, time.perf_counter() - start)
