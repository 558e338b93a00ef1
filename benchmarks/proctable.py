"""The process table, read from /proc: which processes still belong to a test's command.

A process belongs to it when its environment or command line names the test's own directory
(every command under test gets a fresh data dir), or it descends from one of its pids.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return b""


def _ppid_and_state(pid: int) -> tuple[int, str]:
    stat = _read(f"/proc/{pid}/stat").decode(errors="replace")
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    rest = stat.rpartition(")")[2].split()
    return (int(rest[1]), rest[0]) if len(rest) > 1 else (0, "?")


def belonging(marker: str | Path, roots: tuple[int, ...] = ()) -> list[int]:
    """Live (non-zombie) pids whose environ or cmdline contains `marker`, or under `roots`."""
    needle = str(marker).encode()
    me = os.getpid()
    table: dict[int, tuple[int, str]] = {}
    hits: set[int] = set()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        pid = int(name)
        table[pid] = _ppid_and_state(pid)
        if needle in _read(f"/proc/{pid}/environ") or needle in _read(f"/proc/{pid}/cmdline"):
            hits.add(pid)
    frontier = set(roots)
    while frontier:
        kids = {p for p, (pp, _) in table.items() if pp in frontier and p not in hits}
        hits |= kids
        frontier = kids
    return sorted(p for p in hits if table.get(p, (0, "Z"))[1] not in ("Z", "X", "?"))


def gone_within(
    marker: str | Path, seconds: float, roots: tuple[int, ...] = ()
) -> tuple[list[int], float]:
    """Wait up to `seconds` for every such process to end: (still there, seconds waited)."""
    t0 = time.monotonic()
    while (left := belonging(marker, roots)) and time.monotonic() - t0 < seconds:
        time.sleep(0.05)
    return left, time.monotonic() - t0
