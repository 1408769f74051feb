"""`--backend=jax`: compiled XLA programs kept between runs on one machine, so the same command compiles once.

    TFAPP_CACHE_DIR=/tmp/c tfapp-train --backend=jax --task=language_model   # programs in /tmp/c/jax/<machine key>/
    TFAPP_COMPILE_CACHE=0 tfapp-train --backend=jax …                        # off

JAX's persistent compilation cache (`jax_compilation_cache_dir`) keys a program by its HLO and compile options:
the language model's first step comes several seconds sooner with its programs cached
(docs/performance.md#figures-behind-the-code). Every program is written, also those that compile in well
under a second. The folder is keyed by JAX's version and the CPU's features, since a program
compiled for one CPU must not run on another (a home directory shared between machines), and at each start the
oldest files beyond `MAX_BYTES` are deleted.

The TensorFlow engine has no such cache: TF's `--tf_xla_persistent_cache_directory` keys a program by the traced
function's name, which carries a process-wide counter that tfapp's background tracing (evaluation, FLOPs) moves
from run to run, so repeats of one command kept writing new programs (docs/performance.md#figures-behind-the-code).
"""
import hashlib
import os
import platform

from tfapp import local_cache

MAX_BYTES = 2 * 2**30  # the language model's programs are ~1 MB
# Programs compiled in at least this many seconds are written. 0: all of them; the language model's build (its
# initialisers, ~170 small programs) takes less than half as long with a full cache
# (docs/performance.md#figures-behind-the-code).
MIN_COMPILE_SECONDS = 0.0


def machine_key(framework_version):
    """A short hash of the framework version and the CPU (model name and feature flags on Linux)."""
    cpu = platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu += "".join(sorted({line for line in f if line.startswith(("model name", "flags"))}))
    except OSError:
        cpu += platform.processor()
    return hashlib.sha256(f"{framework_version}|{cpu}".encode()).hexdigest()[:16]


def prune(directory, max_bytes=MAX_BYTES):
    """Deletes the oldest files (by modification time) under `directory` until at most `max_bytes` remain."""
    files = []
    for root, _, names in os.walk(directory):
        for name in names:
            try:
                stat = os.stat(os.path.join(root, name))
            except OSError:
                continue
            files.append((stat.st_mtime, stat.st_size, os.path.join(root, name)))
    total = sum(size for _, size, _ in files)
    for _, size, path in sorted(files):
        if total <= max_bytes:
            break
        try:
            os.remove(path)
        except OSError:
            pass
        total -= size


def enable_jax():
    """Points JAX's compilation cache at this machine's folder; returns it, or None when off or unwritable."""
    if os.environ.get("TFAPP_COMPILE_CACHE", "1") == "0":
        return None
    import jax
    directory = local_cache.path("jax", machine_key(f"jax {jax.__version__}"))
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError:
        return None  # a cache only saves time
    prune(directory)
    jax.config.update("jax_compilation_cache_dir", directory)
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
        # Every program, not only those that compiled in >= 1 s (JAX's default): a model's ~100 small eager
        # programs (its initialisers) and a small model's train loop add up to seconds (see MIN_COMPILE_SECONDS).
        jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    return directory
