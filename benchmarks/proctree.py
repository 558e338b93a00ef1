"""Run one command as a whole process and watch its process tree from /proc while it runs:
wall time, CPU seconds, peak summed RSS (and PSS), most threads running at once, most processes.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.rss import PAGE, tasks, tree_pids
from reflector_cli.core import blas

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Sample:
    """What one command cost, measured from outside."""

    wall_s: float = 0.0
    cpu_s: float = 0.0  # user + system of the command and every descendant it reaped
    returncode: int = 0
    stdout: str = ""
    started: float = 0.0  # time.time() at spawn, to line up with stored stage times
    peak_rss: int = 0  # bytes, summed over the tree (shared pages count once per process)
    peak_pss: int = 0  # bytes, proportional share: shared pages split between their users
    max_running: int = 0  # threads in state R at one sample
    max_procs: int = 0
    running: list[int] = field(default_factory=list)

    @property
    def mean_running(self) -> float:
        return statistics.fmean(self.running) if self.running else 0.0


def cores() -> int:
    return len(os.sched_getaffinity(0))


def _stat_state(path: Path) -> str:
    try:
        text = path.read_text()
    except OSError:
        return ""
    return text[text.rfind(")") + 2 : text.rfind(")") + 3]  # comm may hold spaces and ')'


def _pss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _snapshot(pid: int, pss: bool, out: Sample) -> None:
    pids = tree_pids(pid)
    rss = running = 0
    total_pss = 0
    for p in pids:
        try:
            rss += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            continue
        running += sum(_stat_state(Path(f"/proc/{p}/task/{t}/stat")) == "R" for t in tasks(p))
        if pss:
            total_pss += _pss(p)
    out.peak_rss = max(out.peak_rss, rss)
    out.peak_pss = max(out.peak_pss, total_pss)
    out.max_running = max(out.max_running, running)
    out.max_procs = max(out.max_procs, len(pids))
    out.running.append(running)


def run(
    cmd: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    interval: float = 0.1,
    pss: bool = False,
    check: bool = True,
) -> Sample:
    """Run `cmd` to its end, sampling its tree every `interval` seconds; stdout is kept."""
    out = Sample(started=time.time())
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, text=True)
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            _snapshot(proc.pid, pss, out)
            done.wait(interval)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    chunks: list[str] = []
    reader = threading.Thread(target=lambda: chunks.append(proc.stdout.read()), daemon=True)
    reader.start()
    # wait4 rather than wait: its rusage covers the whole reaped tree, not this process's kids.
    _, status, usage = os.wait4(proc.pid, 0)
    out.wall_s = time.perf_counter() - t0
    done.set()
    proc.returncode = os.waitstatus_to_exitcode(status)
    reader.join()
    watcher.join()
    out.cpu_s = usage.ru_utime + usage.ru_stime
    out.returncode = proc.returncode
    out.stdout = "".join(chunks)
    if check and out.returncode:
        raise SystemExit(f"{' '.join(cmd[:4])}… exited {out.returncode}")
    return out


def reflector_cmd() -> list[str]:
    """The installed console script a user types, else the module."""
    script = Path(sys.executable).parent / "reflector"
    return [str(script)] if script.exists() else [sys.executable, "-m", "reflector_cli.cli"]


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without reflector/provider settings, so a run uses the defaults."""
    drop = ("REFLECTOR_", "DURABLE_WORKFLOW_", "HATCHET_", "CELERY_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    if blas.set_here:  # importing reflector_cli set it here; the peers run as a user's would
        env.pop(blas.THREADS_ENV, None)
    return {**env, **extra}


def competitor() -> subprocess.Popen[bytes]:
    """A CPU-heavy neighbour: a numpy loop busy on one core until killed."""
    code = (
        "import numpy as np\nx = np.random.default_rng(0).random(1 << 20)\n"
        "while True:\n    np.sin(x, out=x)\n"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code],
        env={**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"},
    )


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f} / {five:.1f} / {fifteen:.1f} on {cores()} cores"


def spread(values: list[float]) -> str:
    """`median (min–max)`."""
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"
