"""One BLAS thread per process: the pipeline already spreads its work over the cores."""

from __future__ import annotations

import os

# Read by OpenBLAS (numpy's BLAS) once, when numpy is first imported.
THREADS_ENV = "OPENBLAS_NUM_THREADS"
# True once this process set it (rather than the user): tools that start other programs from
# here (the benchmarks' peers) hand those the user's environment, not ours.
set_here = False


def one_thread_unless_set() -> None:
    """Cap numpy's BLAS at one thread in this process and the ones it starts, unless the user
    chose a number. OpenBLAS starts a thread per core at import and keeps them spinning after
    each call; our stage workers already take a core each, so those threads bought nothing and
    cost ~0.1 CPU-s per process start (fixture run: 6.38 → 5.95 CPU-s, 3.35 → 3.15 s wall)."""
    global set_here
    if THREADS_ENV not in os.environ:
        os.environ[THREADS_ENV] = "1"
        set_here = True
