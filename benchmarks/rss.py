"""Peak resident memory of a whole process tree, sampled from /proc (Linux, no dependencies)."""

from __future__ import annotations

import os
import time
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    for task in tasks(pid):
        try:
            kids += [int(p) for p in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
        except OSError:
            continue
    return kids


def tasks(pid: int) -> list[str]:
    """Thread ids of `pid`; none once it has exited (it may vanish at any moment)."""
    try:
        return os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []


def tree_pids(pid: int) -> list[int]:
    """`pid` and all its live descendants (a snapshot; processes may exit meanwhile)."""
    out, stack = [], [pid]
    while stack:
        p = stack.pop()
        out.append(p)
        stack += _children(p)
    return out


def tree_rss(pid: int) -> int:
    total = 0
    for p in tree_pids(pid):
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            continue
    return total


def peak_tree_rss(pid: int, peak: list[int], interval: float = 0.05) -> None:
    """Update peak[0] until `pid` is gone."""
    while Path(f"/proc/{pid}").exists():
        peak[0] = max(peak[0], tree_rss(pid))
        time.sleep(interval)
