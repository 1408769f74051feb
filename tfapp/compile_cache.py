"""Compiled XLA programs kept between runs on one machine: the same command run again skips the XLA compile.

    TFAPP_CACHE_DIR=/tmp/c tfapp-train --task=language_model   # programs in /tmp/c/xla/<machine key>/
    TFAPP_COMPILE_CACHE=0 tfapp-train …                        # off

TensorFlow reads `--tf_xla_persistent_cache_directory` from `TF_XLA_FLAGS` at its first XLA compile (not at
import), so `enable()` works after `import tensorflow`; JAX takes `jax_compilation_cache_dir`. The language
model's Muon step (2-core CPU): the first call took 17.2 s cold and 11.1-12.6 s with its program cached
(docs/tasks.md#language-model). A program is found again only for the same graph (model, batch, optimizer,
flags); the folder is keyed by framework version and CPU features, since a program compiled for one CPU must not
run on another (a home directory shared between machines). At each start the oldest files beyond `MAX_BYTES`
are deleted. Your own `--tf_xla_persistent_cache_directory` in `TF_XLA_FLAGS` wins.
"""
import hashlib
import os
import platform

from tfapp import local_cache

MAX_BYTES = 2 * 2**30  # the language model's program is ~7 MB; a few hundred programs fit
TF_FLAG = "--tf_xla_persistent_cache_directory"


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


def enable(engine):
    """Turns the cache on for `engine` ("tensorflow" or "jax"); returns its folder, or None when off."""
    if os.environ.get("TFAPP_COMPILE_CACHE", "1") == "0":
        return None
    if engine == "jax":
        import jax
        directory = local_cache.path("jax", machine_key(f"jax {jax.__version__}"))
    else:
        if TF_FLAG in os.environ.get("TF_XLA_FLAGS", ""):
            return None  # the user's own
        import tensorflow as tf
        directory = local_cache.path("xla", machine_key(f"tensorflow {tf.__version__}"))
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError:
        return None  # a cache only saves time
    prune(directory)
    if engine == "jax":
        jax.config.update("jax_compilation_cache_dir", directory)
    else:
        os.environ["TF_XLA_FLAGS"] = f"{os.environ.get('TF_XLA_FLAGS', '')} {TF_FLAG}={directory}".strip()
    return directory
