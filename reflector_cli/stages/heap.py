"""Hand freed heap memory back to the OS after a big transient (glibc keeps it otherwise), and
keep big transients out of the heap in the first place."""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache

# Blocks at least this big get pages of their own, unmapped as soon as they are freed. glibc's
# own threshold rises to the largest block freed so far (up to 32 MB), after which Whisper
# features, Silero's batches and encoder activations come from the heap and stay resident
# when freed; two workers' kept peaks then add up. 60-minute 4-track meeting: peak summed RSS
# 1040 -> 911 MB, same words, CPU within noise.
MMAP_THRESHOLD = 4 << 20
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)


@lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    try:  # glibc by its soname: find_library would run `ldconfig -p` in a subprocess
        lib: ctypes.CDLL | None = ctypes.CDLL("libc.so.6")
    except OSError:
        name = ctypes.util.find_library("c")
        try:
            lib = ctypes.CDLL(name) if name else None
        except OSError:
            return None
    return lib if lib is not None and hasattr(lib, "malloc_trim") else None


@lru_cache(maxsize=1)
def bound_retention() -> bool:
    """Map big blocks on their own from now on in this process (once); False without glibc."""
    lib = _libc()
    if lib is None or not hasattr(lib, "mallopt"):
        return False
    return bool(lib.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))


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
