"""`--mixed_precision=auto`: bfloat16 where the device computes it natively and a short check on the task shows it
is faster with no loss in the training objective; float32 otherwise. Kept between runs like autotune's choices.

    tfapp-train --mixed_precision=auto            # report.json["precision"]: the choice, its source and reason

Natively: TPUs; NVIDIA GPUs of compute capability 8.0 and later (A100, H100, L4, …); on the TensorFlow engine,
CPUs with AVX512-BF16 or AMX (oneDNN runs bfloat16 matmuls there: 1,473 against 403 GFLOP/s float32 on a 2-core
Sapphire Rapids slice). XLA:CPU does not (JAX's bfloat16 matmuls ran at its float32 rate on the same CPU: 351
against 340 GFLOP/s), so the JAX engine keeps float32 on CPUs without measuring.
The check (`probe`): the model built twice from the same seed, each precision trained `probe_steps` steps on the
same batches after one compiling step; bfloat16 is kept when it ran at least `MIN_SPEEDUP` times as many steps
per second and its training loss came down at least `PROGRESS` as far as float32's over those steps (from the
same first loss: a check against a precision that breaks the task, not a forecast of its last digits). The choice, the
two measurements and the reason go into report.json and into `<tfapp cache>/precision/` (the same command
measures nothing the second time). A resumed run keeps the precision its checkpoint was trained in.
"""
import hashlib
import importlib.metadata
import json
import math
import time

from tfapp import local_cache

MIN_SPEEDUP = 1.10  # bfloat16 must be this much faster …
PROGRESS = 0.90     # … and its training loss must have come down at least 90% as far as float32's
PROBE_STEPS = 50    # timed steps per precision (at most a tenth of the run, at least 5)
FORMAT = 1


def cpu_flags():
    """The CPU's feature flags (Linux), or an empty set."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def native(engine, platform, compute_capability=None, flags=None):
    """(whether the device computes bfloat16 natively for this engine, why). `platform`: "cpu", "gpu" or "tpu";
    `compute_capability`: (major, minor) of an NVIDIA GPU; `flags`: the CPU's feature flags."""
    if platform == "tpu":
        return True, "TPUs compute in bfloat16"
    if platform == "gpu":
        if compute_capability and tuple(compute_capability) >= (8, 0):
            return True, f"a GPU of compute capability {compute_capability[0]}.{compute_capability[1]} has " \
                         "bfloat16 tensor cores"
        return False, "float32: this GPU has no bfloat16 tensor cores (compute capability below 8.0)"
    if engine == "jax":
        return False, "float32: XLA:CPU computes bfloat16 matmuls at its float32 rate"
    found = sorted({"avx512_bf16", "amx_bf16"} & (cpu_flags() if flags is None else set(flags)))
    if found:
        return True, f"this CPU has {' and '.join(found)} (oneDNN)"
    return False, "float32: this CPU has neither AVX512-BF16 nor AMX"


def probe_steps(train_steps):
    return max(5, min(PROBE_STEPS, train_steps // 10))


def timed_training(trainer, iterator, steps):
    """{"first_loss", "loss", "steps_per_second"}: the loss of one compiling step, then the mean loss and the
    speed of `steps` more (for `choose`'s candidates)."""
    trainer.reset_input()
    first = trainer.train(iterator, 1)["loss"]
    start = time.perf_counter()
    values = trainer.train(iterator, steps)
    return {"first_loss": first, "loss": values["loss"], "steps_per_second": steps / (time.perf_counter() - start)}


def decide(float32, bfloat16):
    """(choice, reason) from the two measurements. Early in training the loss falls fast and a rounding difference
    shifts where each run is on that slope (digits/cnn, 50 steps: 0.979 against 0.903 from 2.3), so the check is
    on the progress: bfloat16 must have come down at least PROGRESS as far as float32."""
    speedup = bfloat16["steps_per_second"] / float32["steps_per_second"]
    progress = (bfloat16["first_loss"] - bfloat16["loss"], float32["first_loss"] - float32["loss"])
    if not math.isfinite(bfloat16["loss"]):
        return "none", "float32: the bfloat16 loss was not finite"
    if bfloat16["loss"] > float32["loss"] and progress[0] < PROGRESS * progress[1]:
        return "none", (f"float32: bfloat16's training loss came down {progress[0]:.4f}, float32's {progress[1]:.4f} "
                        f"(needs {PROGRESS:.0%} of it)")
    if speedup < MIN_SPEEDUP:
        return "none", f"float32: bfloat16 ran {speedup:.2f}x its steps/s (needs {MIN_SPEEDUP:.2f}x)"
    return "bfloat16", (f"bfloat16: {speedup:.2f}x float32's steps/s, training loss {bfloat16['loss']:.4f} "
                        f"against {float32['loss']:.4f}")


def _cache_file(cache_key):
    digest = hashlib.sha1(json.dumps(cache_key, sort_keys=True).encode()).hexdigest()[:16]
    return local_cache.path("precision", f"{digest}.json")


def cache_key(config, engine, device, replicas):
    """Everything the choice depends on: device, versions, engine, task, model, data, batch, replicas, optimizer."""
    def version(package):
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return None
    return {"format": FORMAT, "device": device, "tensorflow": version("tensorflow"), "keras": version("keras"),
            "jax": version("jax") if engine == "jax" else None, "engine": engine, "task": config.task,
            "model": config.model, "data": config.data, "batch_size": config.batch_size, "replicas": replicas,
            "optimizer": config.optimizer, "jit_compile": config.jit_compile}


def choose(config, engine, device, replicas, is_native, try_precision, platform="cpu", workers=1):
    """(precision flag value, record for report.json) for --mixed_precision=auto. `is_native`: `native(...)`;
    `try_precision(flag value, steps)` trains a fresh model in that precision and returns `timed_training`'s dict.
    Not measured: TPUs (bfloat16: their float32 matmuls run as bfloat16 passes anyway), --deterministic and
    several workers (float32: measuring is time-dependent, and workers must not choose differently)."""
    supported, reason = is_native
    if supported and platform == "tpu":
        return "bfloat16", {"choice": "bfloat16", "source": "rule", "reason": reason}
    if supported and (config.deterministic or workers > 1):
        supported, reason = False, "float32: not measured under --deterministic or with several workers"
    if not supported:
        return "none", {"choice": "none", "source": "rule", "reason": reason}
    key = cache_key(config, engine, device, replicas)
    entry = local_cache.read_json(_cache_file(key)) if config.autotune == "cache" else None
    if isinstance(entry, dict) and entry.get("key") == key and entry.get("choice") in ("none", "bfloat16"):
        return entry["choice"], {**{k: v for k, v in entry.items() if k != "key"}, "source": "cache",
                                 "cache_file": _cache_file(key)}
    steps = probe_steps(config.train_steps)
    start = time.perf_counter()
    measured = {"float32": try_precision("none", steps), "bfloat16": try_precision("bfloat16", steps)}
    choice, why = decide(measured["float32"], measured["bfloat16"])
    entry = {"key": key, "choice": choice, "reason": f"{reason}; {why}", "steps": steps, "measurements": measured,
             "seconds": time.perf_counter() - start, "written": time.strftime("%Y-%m-%dT%H:%M:%S")}
    local_cache.write_json(_cache_file(key), entry)
    return choice, {**{k: v for k, v in entry.items() if k != "key"}, "source": "measured",
                    "cache_file": _cache_file(key)}
