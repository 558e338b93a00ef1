"""Keep freed memory for reuse inside a task, and hand it back to the OS between tasks and after
each big transient (glibc keeps it otherwise)."""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache

# mallopt's parameter numbers (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
# Free memory at the top of the heap beyond this goes back to the OS at once; the rest is reused
# until the next trim() (after the VAD, each decode group and each task).
TRIM_THRESHOLD = 64 << 20


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
def reuse_freed() -> bool:
    """From now on in this process (once), serve big blocks from one heap that keeps freed memory
    until trim(); False without glibc.

    CTranslate2 allocates every layer's outputs afresh, the encoder's attention scores among them
    (54 MB per layer for a full window). Mapped on their own, as glibc does above 4-32 MB, each
    was unmapped when freed and page-faulted in again at the next layer: 5.3 M page faults for
    the ASR of a 60-minute track, 0.5 M for the fixture's three. One arena for all threads,
    because the main thread's freed features and audio can then serve CTranslate2's thread;
    with an arena each, both peaks stayed resident.
    """
    lib = _libc()
    if lib is None or not hasattr(lib, "mallopt"):
        return False
    settings = ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return all(lib.mallopt(param, value) for param, value in settings)


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
