"""Hand freed heap memory back to the OS after a big transient (glibc keeps it otherwise)."""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache


@lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        lib = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return lib if lib is not None and hasattr(lib, "malloc_trim") else None


def trim() -> bool:
    """Return free heap pages of every malloc arena to the OS; False where libc has no
    malloc_trim (musl, macOS), where there is nothing to do.

    A worker that decoded a window of audio keeps the freed pages resident: summed over the
    workers, that retention is what lifts the process tree's peak while another one works.
    """
    lib = _libc()
    if lib is None:
        return False
    lib.malloc_trim(0)
    return True
