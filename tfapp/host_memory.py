"""Freed host memory kept for reuse on CPU-only JAX runs, so a compiled program's scratch is not faulted in anew
at every call.

    python -c "from tfapp import host_memory; print(host_memory.keep_freed_memory())"
    TFAPP_HOST_MALLOC=default tfapp-train --backend=jax …    # leave glibc's malloc as it is

An XLA:CPU program gets its scratch (temporaries) from malloc at every call. glibc serves blocks over its mmap
threshold (at most 32 MB) with a fresh mmap and unmaps them on free, so each call's scratch is faulted in page by
page, zeroed by the kernel, which slows short loops of such a program (figures in
docs/performance.md#figures-behind-the-code). Serving every block from malloc's heaps (M_MMAP_MAX=0) and keeping up
to `KEEP_BYTES` free at a heap's top (M_TRIM_THRESHOLD) lets the next call reuse the same pages. The TensorFlow
engine's allocations did not fault like this (its page faults rose with the setting), so only the JAX engine asks
for it, and only with one CPU device per process: on accelerators the scratch lives in device memory, and a CPU
split into several devices is a test set-up (docs/performance.md#figures-behind-the-code). Freed memory then stays
with the process (reused by it, not returned to the system) up to `KEEP_BYTES` per heap.
"""
import ctypes
import ctypes.util
import os
import platform

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_MAX = -4
KEEP_BYTES = 2**30  # freed memory a heap keeps at its top before giving it back
ENV = "TFAPP_HOST_MALLOC"  # "default": leave malloc as it is

_applied = None


def keep_freed_memory():
    """Asks glibc's malloc (once per process) to serve large blocks from its heaps and keep freed memory for reuse.
    Returns what was set, as one line for report.json, or None: not Linux with glibc, or TFAPP_HOST_MALLOC=default."""
    global _applied
    if _applied is not None:
        return _applied or None
    _applied = ""
    if os.environ.get(ENV, "") == "default" or platform.system() != "Linux" or \
            platform.libc_ver()[0] != "glibc":
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    if libc.mallopt(M_MMAP_MAX, 0) != 1 or libc.mallopt(M_TRIM_THRESHOLD, KEEP_BYTES) != 1:
        return None
    _applied = f"glibc mallopt: M_MMAP_MAX=0, M_TRIM_THRESHOLD={KEEP_BYTES} ({ENV}=default: off)"
    return _applied


def current():
    """What keep_freed_memory set in this process (one line), or None."""
    return _applied or None
