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


_BLOCKS = """
import subprocess
import sys
from pathlib import Path
import numpy as np
from reflector_cli.stages import heap

def rss():
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if "VmRSS" in x)
    return int(line.split()[1]) / 1024

if sys.argv[1] == "bounded":
    assert heap.bound_retention()
big = np.ones(3 << 20)  # 24 MB, mapped on its own: freeing it lifts glibc's own threshold
del big
blocks = [np.ones(2 << 20) for _ in range(10)]  # 10 x 16 MB: a decode's transients
top = np.ones(2 << 20)  # still in use, above them
before = rss()
del blocks
print(before - rss())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc and /proc are Linux's")
def test_bounded_retention_returns_big_freed_blocks_at_once() -> None:
    def freed_mb(mode: str) -> float:
        out = subprocess.run(
            [sys.executable, "-c", _BLOCKS, mode], capture_output=True, text=True, check=True
        )
        return float(out.stdout)

    assert freed_mb("glibc default") < 40  # kept resident until someone trims
    assert freed_mb("bounded") > 140
