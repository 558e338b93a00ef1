"""heap.trim gives freed heap pages back to the OS."""

from __future__ import annotations

import ctypes.util
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
