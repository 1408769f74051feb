"""`--jit_compile=auto` / `--steps_per_loop=auto`: measure on the real task, keep the fastest.

    tfapp-train --jit_compile=auto --steps_per_loop=auto --autotune_seconds=3   # see report.json["autotune"]

Keras decides XLA by a fixed rule (off on CPU, off under any strategy). On a CPU, XLA can halve a conv net's
throughput and speed up a small dense one, so we time it instead: XLA off / per step / per block of in-memory
batches. Measuring must pay for itself (`tfapp/autotune_cache.py` keeps the answer for the next run):
- The plain setting (the first candidate) is traced and a short probe loop timed. The probe's speed × the
  steps left is the planned run; the budget is `FRACTION` of it, and at most `budget_seconds`, spent from the
  end of that trace (the run pays for one trace or compile whatever is measured).
- Steps per loop: more steps per host round-trip are never slower, only coarser (progress, signals, callbacks
  act between loops), so `auto` takes the largest candidate whose loop lasts at most `LOOP_SECONDS` at the
  chosen setting's measured speed rather than timing each (noise once picked 1 step per loop where 16 ran
  faster: docs/performance.md#figures-behind-the-code). The settings are compared on loops of that size at the
  probe's speed.
- An XLA candidate is compiled only while the budget left could pay for its compile (`COMPILE_FACTOR` × the
  plain trace, then the last XLA compile's time; per block before per step): a short run never compiles one,
  and `untried` lists it so a longer run with the cache tries it.
  One that fails to compile (an op XLA lacks) is recorded with a one-line reason and skipped.
  Each measured setting's first step (trace or compile) is kept in `measurements` as `first_step_seconds`.
- With two or more settings compiled, they run round-robin, one loop each per round, until the budget is spent
  and at least `MIN_ROUNDS` rounds have run (single loops move by ±25% on a shared machine: a choice from one
  loop each flipped between runs of the same command); one below `DROP` × the best after the first round is
  dropped; the choice is the best median, ties (within `TIE`) going to no XLA.
The model, optimizer and random-number variables are snapshotted first and restored after, and measuring reads
an iterator of its own, so it leaves no trace: the run starts from its first step with the chosen setting.
"""
import dataclasses
import statistics
import time

import tensorflow as tf

STEPS_PER_LOOP_CANDIDATES = (1, 4, 16, 64, 256)
LOOP_SECONDS = 0.5  # steps_per_loop=auto: the largest candidate whose loop takes at most this long
PROBE_SECONDS = 0.05  # the probe grows its loop 4x (from 2 steps, up to 64) until one lasts this long
TIE = 0.03  # within 3% of the fastest counts as a tie: prefer no XLA
JIT_ORDER = (False, True, "block")  # ties go to the earlier one
FRACTION = 0.15  # measuring may cost at most this share of the planned run … (0.10 until 2026-12-06: see docs)
COMPILE_FACTOR = 3.0  # … and an XLA compile is expected to take this many times the plain step's trace
DROP = 0.5  # a setting below this share of the best after the first round stops being measured
MIN_ROUNDS = 3  # compiled settings are compared on medians of at least this many loops each (loops ≤ LOOP_SECONDS)


@dataclasses.dataclass
class AutotuneResult:
    trainer: object
    jit_compile: object  # False, True (XLA per step) or "block" (XLA per block of batches)
    steps_per_loop: int
    measurements: list
    seconds: float
    steps_per_second: float = None  # the choice's median speed while measuring
    untried: list = dataclasses.field(default_factory=list)  # XLA settings the budget could not pay for
    trace_seconds: float = None  # the plain setting's first step (trace): what an XLA compile is compared with
    budget_seconds: float = None  # what measuring could spend (FRACTION of the planned run, capped)

    def to_json(self):
        return {"seconds": self.seconds, "measurements": self.measurements, "untried": self.untried,
                "steps_per_second": self.steps_per_second, "trace_seconds": self.trace_seconds,
                "budget_seconds": self.budget_seconds,
                "choice": {"jit_compile": self.jit_compile, "steps_per_loop": self.steps_per_loop}}


def jit_candidates(choice, strategy, blocks=False, xla_known_best=False):
    """XLA settings worth measuring for `--jit_compile=choice` on `strategy`; `blocks`: the loop takes blocks of
    in-memory batches, so "block" (one XLA program per block) is a candidate too; `xla_known_best`: the task
    measured XLA per step to win for this model (`Task.xla_models`), so auto takes it where XLA can run."""
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
    if xla_known_best:
        return [True]
    # XLA per block first: where it applies it beat XLA per step (docs/performance.md#figures-behind-the-code), and
    # a tight budget may pay for only one compile.
    return [False, "block", True] if blocks else [False, True]


def _snapshot(variables):
    return [tf.identity(v.value if hasattr(v, "value") else v) for v in variables]


def _restore(variables, values):
    for variable, value in zip(variables, values):
        variable.assign(value)


def _one_line(error):
    text = getattr(error, "message", None) or str(error) or type(error).__name__
    return f"{type(error).__name__}: {text.strip().splitlines()[0][:300]}"


def _timed_loop(trainer, iterator, steps):
    start = time.perf_counter()
    trainer.train(iterator, steps)
    return steps / (time.perf_counter() - start)


def _probe(trainer, iterator):
    """(steps, steps/s) of a loop long enough to time (PROBE_SECONDS; at most 64 steps): a first 2-step loop
    alone is mostly host overhead and warm-up, which would make a fast model look slow."""
    steps = 2
    while True:
        speed = _timed_loop(trainer, iterator, steps)
        if steps / speed >= PROBE_SECONDS or steps >= 64:
            return steps, speed
        steps *= 4


def _choose(measurements):
    """The fastest by median steps/s; within TIE of it, no XLA first."""
    timed = [m for m in measurements if "steps_per_second" in m]
    if not timed:
        raise RuntimeError(f"autotune: every candidate failed: {measurements}")
    best = max(m["steps_per_second"] for m in timed)
    ties = [m for m in timed if m["steps_per_second"] >= (1 - TIE) * best]
    return min(ties, key=lambda m: JIT_ORDER.index(m["jit_compile"]))


def loop_size(steps_per_second, candidates=STEPS_PER_LOOP_CANDIDATES):
    """The largest candidate whose loop lasts at most LOOP_SECONDS at this speed (the smallest if none does)."""
    fitting = [steps for steps in candidates if steps / steps_per_second <= LOOP_SECONDS]
    return max(fitting) if fitting else min(candidates)


class LoopSizeFromSpeed:
    """`--steps_per_loop=auto` without a probe (the JAX engine): the run's own loops time the step, and each next
    loop takes `loop_size` of the fastest loop so far (a short loop carries its fixed cost over fewer steps, so
    the estimate only grows). `size` is the loop size now; the host loop calls `observe` after each timed loop."""

    def __init__(self, first=STEPS_PER_LOOP_CANDIDATES[1]):
        self.size, self._fastest = first, 0.0

    def observe(self, steps, seconds):
        if seconds > 0 and steps / seconds > self._fastest:
            self._fastest = steps / seconds
            self.size = loop_size(self._fastest)


def _compile(make_trainer, jit, iterator, measurements):
    """A trainer for `jit` after its first (tracing, compiling) step, or None if it failed to compile."""
    trainer = make_trainer(jit)
    try:
        trainer.train(iterator, 1)
    except (tf.errors.OpError, ValueError, TypeError, NotImplementedError) as error:
        measurements.append({"jit_compile": jit, "failed": _one_line(error)})  # e.g. an op XLA cannot compile
        return None
    return trainer


def _round_robin(trainers, iterator, steps, deadline):
    """{jit: [steps/s per loop]}: rounds of one loop per live setting until `deadline`, and at least MIN_ROUNDS
    rounds; after the first round, settings below DROP × the best are dropped."""
    speeds, live = {jit: [] for jit in trainers}, list(trainers)
    while True:
        for jit in live:
            speeds[jit].append(_timed_loop(trainers[jit], iterator, steps))
        if len(speeds[live[0]]) == 1:
            best = max(speeds[jit][0] for jit in live)
            live = [jit for jit in live if speeds[jit][0] >= DROP * best]
        if time.perf_counter() >= deadline and len(speeds[live[0]]) >= MIN_ROUNDS:
            return speeds


def autotune(make_trainer, iterator, jit_candidates, steps_per_loop=None, budget_seconds=3.0, planned_steps=None,
             variables=lambda: []):
    """Chooses the XLA setting (and, with `steps_per_loop=None`, the loop size) within the budget.

    make_trainer(jit) -> loop.Trainer sharing one model/optimizer; `iterator`: a throwaway iterator over the
    training data (not the run's); `planned_steps`: steps the run will train (None: only budget_seconds caps);
    `variables()` lists the model + optimizer + RNG variables to restore after measuring. It is called after the
    first trainer exists, i.e. once the optimizer has built its slots (Adam's moments must be restored too).
    """
    start, measurements, untried = time.perf_counter(), [], []
    first_jit, *other_jits = jit_candidates
    trainers = {first_jit: make_trainer(first_jit)}
    tracked = variables()
    saved = _snapshot(tracked)
    trainers[first_jit].train(iterator, 1)  # trace (+ compile), untimed
    trace_seconds = time.perf_counter() - start
    probe_steps, probe = _probe(trainers[first_jit], iterator)
    measurements.append({"jit_compile": first_jit, "steps_per_loop": probe_steps, "probe": True,
                         "steps_per_second": probe})
    budget = min(budget_seconds, FRACTION * planned_steps / probe) if planned_steps else budget_seconds
    # The budget is spent from after the plain trace: the run needs that trace (or an XLA compile in its place)
    # whatever is measured, so only what comes after it is the cost of measuring.
    spent_from = start + trace_seconds
    steps = steps_per_loop or loop_size(probe)  # the loops the settings are compared on
    compile_estimate = COMPILE_FACTOR * trace_seconds  # until an XLA compile has been timed
    first_step_seconds = {first_jit: trace_seconds}
    for jit in other_jits:
        if budget - (time.perf_counter() - spent_from) < compile_estimate:
            untried.append(jit)  # its compile alone would cost more than the budget left
            continue
        compile_start = time.perf_counter()
        compiled = _compile(make_trainer, jit, iterator, measurements)
        compile_estimate = first_step_seconds[jit] = time.perf_counter() - compile_start
        if compiled is not None:
            trainers[jit] = compiled
    if len(trainers) > 1:
        measurements = [m for m in measurements if not m.get("probe")]
        for jit, values in _round_robin(trainers, iterator, steps, spent_from + budget).items():
            measurements.append({"jit_compile": jit, "steps_per_loop": steps, "loops": len(values),
                                 "steps_per_second": statistics.median(values),
                                 "first_step_seconds": first_step_seconds[jit]})
    _restore(tracked, saved)
    choice = _choose(measurements)
    run_steps = steps_per_loop or loop_size(choice["steps_per_second"])  # at the speed the run will train at
    return AutotuneResult(trainers[choice["jit_compile"]], choice["jit_compile"], run_steps, measurements,
                          time.perf_counter() - start, choice["steps_per_second"], untried, trace_seconds, budget)
