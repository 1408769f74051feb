"""tfapp.host_memory: after keep_freed_memory, a freed large block is reused instead of faulted in again."""
import json
import os
import platform
import subprocess
import sys

import pytest

# malloc, touch and free a 48 MB block (over glibc's largest mmap threshold) 5 times; page faults per cycle after the
# first, with or without keep_freed_memory().
CYCLES = """
import ctypes, json, resource, sys
from tfapp import host_memory
line = host_memory.keep_freed_memory() if sys.argv[1] == "keep" else None
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
size = 48 * 2**20
faults = []
for _ in range(5):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = libc.malloc(size)
    ctypes.memset(block, 1, size)
    libc.free(ctypes.c_void_p(block))
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"line": line, "current": host_memory.current(), "faults": faults[1:]}))
"""


def _cycles(mode, env=None):
    out = subprocess.run([sys.executable, "-c", CYCLES, mode], capture_output=True, text=True, check=True,
                         env={**os.environ, **(env or {})}, cwd=os.path.dirname(os.path.dirname(os.path.dirname(
                             os.path.abspath(__file__)))))
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_a_freed_large_block_is_reused_instead_of_faulted_in_again():
    pages = 48 * 2**20 // os.sysconf("SC_PAGE_SIZE")
    default = _cycles("default")
    assert default["line"] is None and default["current"] is None
    assert min(default["faults"]) > pages // 2  # glibc maps and unmaps it at every cycle
    kept = _cycles("keep")
    assert kept["line"].startswith("glibc mallopt: M_MMAP_MAX=0") and kept["current"] == kept["line"]
    assert max(kept["faults"]) < pages // 20  # the same pages again
    off = _cycles("keep", {"TFAPP_HOST_MALLOC": "default"})
    assert off["line"] is None and min(off["faults"]) > pages // 2
