"""The benchmark sampler sees a real process tree (child RSS, running threads), and every
issue-15 benchmark still imports and parses its arguments against the current CLI code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import proctree

ROOT = Path(__file__).resolve().parents[2]
# A child that holds 64 MiB resident and burns one CPU second, under a parent.
CHILD = "import time, numpy as np; a = np.ones(64 << 17)\nwhile time.process_time() < 1.0: a += 1"


def test_sampler_sums_the_tree_and_counts_running_threads() -> None:
    s = proctree.run(
        [
            sys.executable,
            "-c",
            f"import subprocess, sys; subprocess.run([sys.executable, '-c', {CHILD!r}])",
        ],
        interval=0.05,
        pss=True,
    )
    assert s.returncode == 0
    assert s.max_procs >= 2
    assert s.peak_rss >= 64 << 20
    assert s.peak_pss >= 32 << 20
    assert s.max_running >= 1
    assert s.cpu_s >= 0.9  # the grandchild's CPU time reaches the parent's wait4


def test_failing_command_is_reported() -> None:
    with pytest.raises(SystemExit, match="exited 3"):
        proctree.run([sys.executable, "-c", "raise SystemExit(3)"])


@pytest.mark.parametrize(
    "script", ["single_file_route.py", "memory_length.py", "throughput.py", "peer.py"]
)
def test_benchmark_help(script: str) -> None:
    res = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert res.returncode == 0, res.stderr
    assert "usage:" in res.stdout
