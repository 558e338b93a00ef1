"""numpy's BLAS runs one thread in our processes, unless the user asked for more."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from reflector_cli.core.blas import THREADS_ENV

# Threads of a fresh interpreter after it imported the package, then numpy and used its BLAS.
PROBE = (
    "import reflector_cli, numpy, os; a = numpy.ones((256, 256)); a @ a; "
    "print(len(os.listdir('/proc/self/task')))"
)


def _threads(**env: str) -> int:
    clean = {k: v for k, v in os.environ.items() if k != THREADS_ENV}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return int(out.stdout)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="OpenBLAS starts no pool on one core")
def test_a_process_of_ours_runs_numpy_on_one_thread_and_a_users_choice_wins() -> None:
    assert _threads() == 1
    assert _threads(**{THREADS_ENV: "2"}) == 2
