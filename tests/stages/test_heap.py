"""heap.trim gives freed heap pages back to the OS."""

from __future__ import annotations

import ctypes.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reflector_cli.stages import heap


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc and /proc are Linux's")
def test_freed_small_arrays_leave_the_resident_set() -> None:
    assert ctypes.util.find_library("c")
    # 64 KB arrays come from the heap, not mmap; the last one keeps the heap's top in use, so
    # free() alone cannot shrink it.
    arrays = [np.ones(8192) for _ in range(3200)]  # 200 MB
    keep = np.ones(8192)
    del arrays
    before = _rss_mb()
    assert heap.trim()
    assert before - _rss_mb() > 100
    del keep


_REUSE = """
import ctypes
import resource
import sys
from pathlib import Path
from reflector_cli.stages import heap

# Plain malloc, as CTranslate2 allocates (numpy asks for huge pages on big arrays, 2 MB a fault).
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
# Above the largest block glibc takes from its heap by default (32 MB), under TRIM_THRESHOLD.
SIZE = 48 << 20

def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

def rss():
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if "VmRSS" in x)
    return int(line.split()[1]) / 1024

# 4 KB pages however the host sets transparent huge pages (`always` faults 2 MB at a time).
libc.prctl(41, 1, 0, 0, 0)  # PR_SET_THP_DISABLE

def touched():
    block = libc.malloc(SIZE)
    ctypes.memset(block, 1, SIZE)
    return block

if sys.argv[1] == "reuse":
    assert heap.reuse_freed()
block = touched()
libc.free(block)
before = faults()
block = touched()  # an encoder's next layer: the same size again
refaulted = faults() - before
libc.free(block)
held = rss()
heap.trim()
print(refaulted, held - rss())
"""


def _freed(mode: str) -> tuple[int, float]:
    out = subprocess.run(
        [sys.executable, "-c", _REUSE, mode], capture_output=True, text=True, check=True
    )
    pages, mb = out.stdout.split()
    return int(pages), float(mb)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc and /proc are Linux's")
def test_a_freed_big_block_is_reused_without_page_faults_and_trimmed_later() -> None:
    pages = (48 << 20) // 4096
    default_faults, _ = _freed("glibc default")
    assert default_faults > pages * 0.9  # mapped afresh, faulted in page by page again
    reuse_faults, trimmed_mb = _freed("reuse")
    assert reuse_faults < pages * 0.1
    assert trimmed_mb > 40  # held for reuse until the trim, then given back
