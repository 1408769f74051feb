"""Autotune decisions kept between runs: the same command on the same machine measures nothing the second time.

    tfapp-train --task=digits                       # measures; report.json["autotune"]["source"] == "measured"
    tfapp-train --task=digits                       # the same choice from the cache: "source": "cache"
    tfapp-train --task=digits --autotune=measure    # measures again and replaces the entry

One JSON file per key in `<tfapp cache dir>/autotune/` (see `tfapp/local_cache.py`; writes are atomic, a corrupt
file is ignored and rewritten). The key holds everything that changes the answer: the device (CPU model and
cores, or accelerator kind and count), TF/Keras/JAX versions, task, model, the shapes and dtypes of a training
batch, global batch, strategy and replicas, precision, block size and the candidate set. An entry is measured
again when a run came out more than `STALE` slower than it promised (a choice lives long, and one measurement on
a busy machine can mislead), or when it left XLA settings untried for lack of budget and this run's budget could
pay for compiling them.
"""
import hashlib
import importlib.metadata
import json
import time

import keras
import tensorflow as tf

from tfapp import autotune, local_cache

STALE = 0.20  # a run this much slower than the cached speed marks the entry for measuring again …
JUDGE_SECONDS = 1.0  # … if its timed loops lasted this long (shorter runs are too noisy to judge)
FORMAT = 1    # bump when the measuring procedure changes what an entry means


def _version(package):
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def key(experiment, device, jit_candidates, steps_per_loop):
    """The dict of everything the choice depends on (`device`: report.device_description of the strategy)."""
    config = experiment.config
    batch_spec = [f"{spec.dtype.name}{spec.shape.as_list()}"  # per-replica specs (Mirrored) expand to tensors
                  for spec in tf.nest.flatten(experiment.train_data.element_spec, expand_composites=True)]
    return {"format": FORMAT, "device": device, "tensorflow": tf.__version__, "keras": keras.__version__,
            "jax": _version("jax"), "task": config.task, "model": config.model, "batch_spec": batch_spec,
            "batch_size": config.batch_size, "strategy": type(experiment.strategy).__name__,
            "replicas": experiment.strategy.num_replicas_in_sync, "precision": config.mixed_precision,
            "optimizer": config.optimizer,
            "model_parallel": getattr(config, "model_parallel", 1),
            "block": experiment.block, "jit_candidates": [str(j) for j in jit_candidates],
            "steps_per_loop": steps_per_loop or list(autotune.STEPS_PER_LOOP_CANDIDATES),
            "loop_seconds": autotune.LOOP_SECONDS}


def file_for(cache_key):
    digest = hashlib.sha1(json.dumps(cache_key, sort_keys=True).encode()).hexdigest()[:16]
    return local_cache.path("autotune", f"{digest}.json")


def lookup(cache_key, planned_steps, budget_seconds):
    """The cached entry for `cache_key`, or None when there is none (or it is corrupt, stale, or worth measuring
    again because this run could afford the XLA compiles an earlier, shorter run skipped)."""
    entry = local_cache.read_json(file_for(cache_key))
    if not isinstance(entry, dict) or entry.get("key") != cache_key or entry.get("stale"):
        return None
    try:
        speed, trace = float(entry["steps_per_second"]), float(entry["trace_seconds"])
        entry["choice"]["jit_compile"], int(entry["choice"]["steps_per_loop"])
    except (KeyError, TypeError, ValueError):
        return None
    if entry.get("untried"):
        # Measure again only for a run that could pay for what measuring skipped: the plain trace comes out of the
        # budget before any XLA compile, and a budget within 2x of the one that skipped it is the same command on
        # a noisy machine (its speed moves the budget by +-15%), which would otherwise measure every time.
        budget = min(budget_seconds, autotune.FRACTION * planned_steps / speed)
        skipped_at = float(entry.get("budget_seconds") or 0.0)
        if budget >= (1 + autotune.COMPILE_FACTOR) * trace and budget > 2 * skipped_at:
            return None
    return entry


def store(cache_key, result):
    """Writes an autotune.AutotuneResult as the entry for `cache_key`; returns the entry."""
    entry = {"key": cache_key, "choice": {"jit_compile": result.jit_compile, "steps_per_loop": result.steps_per_loop},
             "steps_per_second": result.steps_per_second, "trace_seconds": result.trace_seconds,
             "budget_seconds": result.budget_seconds,
             "untried": [str(j) for j in result.untried], "measurements": result.measurements,
             "written": time.strftime("%Y-%m-%dT%H:%M:%S"), "stale": False}
    local_cache.write_json(file_for(cache_key), entry)
    return entry


def _timed_in_rounds(entry):
    """Whether the entry's promise is the median of several round-robin loops (or a single short probe loop)."""
    choice = entry.get("choice", {}).get("jit_compile")
    return any(m.get("jit_compile") == choice and (m.get("loops") or 0) >= 2 for m in entry.get("measurements", []))


def check_speed(path, promised, achieved, timed_seconds):
    """After a run: marks the entry in `path` stale when the run's steady-state steps/s (`achieved`: the median of
    its loops after its background work was done, as `promised` is a median of loops measured alone; the mean of
    all loops let the run's own FLOPs count and export tracing mark good entries stale) fell more than STALE below
    the promised speed, over at least JUDGE_SECONDS of those loops. A promise from the probe alone (one loop of
    ~50 ms: no other setting was timed) moves by more than STALE with the machine's load, so there the bar is
    `autotune.DROP`: re-measuring could only change the loop size. Returns True if it did."""
    if not promised or not achieved or timed_seconds < JUDGE_SECONDS:
        return False
    entry = local_cache.read_json(path)
    if not isinstance(entry, dict):
        return False
    tolerance = STALE if _timed_in_rounds(entry) else autotune.DROP
    if achieved >= (1 - tolerance) * promised:
        return False
    entry["stale"] = True
    entry["stale_because"] = f"a run reached {achieved:.1f} steps/s, promised {promised:.1f}"
    local_cache.write_json(path, entry)
    return True
