"""Plain-text building blocks for terminal views: fitted tables, bars, a waveform sparkline.

Pure functions of their inputs; every line they return fits the width they are given.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

BLOCKS = " ▁▂▃▄▅▆▇█"
BAR = "█"
HALF = "▌"


@dataclass(frozen=True)
class Col:
    header: str
    # Optional columns are dropped (last first) when the table would not fit the width.
    optional: bool = False
    right: bool = False


def fit_table(
    cols: Sequence[Col], rows: Sequence[Sequence[str]], width: int, gap: int = 2
) -> tuple[list[Col], list[list[str]]]:
    """Drop optional columns, right-most first, until every row fits `width`; never cut cells."""
    keep = list(range(len(cols)))

    def total(idx: list[int]) -> int:
        widths = [max([len(cols[i].header), *(len(r[i]) for r in rows)]) for i in idx]
        return sum(widths) + gap * (len(idx) - 1)

    while total(keep) > width and any(cols[i].optional for i in keep):
        drop = max(i for i in keep if cols[i].optional)
        keep.remove(drop)
    return [cols[i] for i in keep], [[r[i] for i in keep] for r in rows]


def table_lines(cols: Sequence[Col], rows: Sequence[Sequence[str]], gap: int = 2) -> list[str]:
    widths = [max([len(c.header), *(len(r[i]) for r in rows)]) for i, c in enumerate(cols)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(w) if c.right else cell.ljust(w)
            for c, cell, w in zip(cols, cells, widths, strict=True)
        ]
        return (" " * gap).join(parts).rstrip()

    return [line([c.header for c in cols]), *(line(r) for r in rows)]


def wrap(text: str, width: int, indent: str = "") -> list[str]:
    """Wrap to `width`, every line (including the first) prefixed with `indent`."""
    return textwrap.wrap(
        " ".join(text.split()),
        width=max(10, width),
        initial_indent=indent,
        subsequent_indent=indent,
        break_long_words=True,
    ) or [indent.rstrip()]


def duration(seconds: float | None) -> str:
    """`0.4s`, `12s`, `3m05s`, `1h02m`: short and sortable by eye; `—` when unknown."""
    if seconds is None:
        return "—"
    if seconds < 10:
        return f"{seconds:.1f}s"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def bar(fraction: float, width: int) -> str:
    """A horizontal bar of `width` cells at most, with half-cell resolution."""
    halves = round(max(0.0, min(1.0, fraction)) * width * 2)
    return BAR * (halves // 2) + (HALF if halves % 2 else "")


def sparkline(peaks: Sequence[float], width: int) -> str:
    """`width` block characters, each the max of its slice of peaks (0..1)."""
    if not peaks or width <= 0:
        return ""
    out = []
    n = len(peaks)
    for i in range(width):
        lo = i * n // width
        hi = max(lo + 1, (i + 1) * n // width)
        v = max(0.0, min(1.0, max(peaks[lo:hi])))
        # Any sound at all gets at least the lowest block; only true silence is blank.
        out.append(BLOCKS[math.ceil(v * (len(BLOCKS) - 1))])
    return "".join(out)


def ticks(starts: Sequence[float], total: float, width: int, mark: str = "^") -> str:
    """A line with `mark` under each start time's column (for topic markers)."""
    if total <= 0 or width <= 0:
        return ""
    cells = [" "] * width
    for s in starts:
        cells[min(width - 1, max(0, int(s / total * width)))] = mark
    return "".join(cells).rstrip()
