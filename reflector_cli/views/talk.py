"""Who spoke when: per-speaker speech spans and talk time, from word timings.

Shared by `show` (bars) and the HTML report (timeline lanes); pure functions of the words.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# Words of one speaker closer than this belong to one span (a breath is not silence).
SPAN_GAP_S = 1.5


def _field(w: Any, name: str) -> Any:
    return w[name] if isinstance(w, Mapping) else getattr(w, name)


def speaker_spans(
    words: Iterable[Any], max_gap: float = SPAN_GAP_S
) -> dict[int, list[tuple[float, float]]]:
    """Speaker -> sorted, non-overlapping (start, end) spans of speech."""
    by: dict[int, list[tuple[float, float]]] = {}
    for w in sorted(words, key=lambda w: (_field(w, "speaker"), _field(w, "start"))):
        spk, start, end = _field(w, "speaker"), _field(w, "start"), _field(w, "end")
        spans = by.setdefault(spk, [])
        if spans and start - spans[-1][1] <= max_gap:
            spans[-1] = (spans[-1][0], max(spans[-1][1], end))
        else:
            spans.append((start, max(start, end)))
    return by


def talk_seconds(words: Iterable[Any], max_gap: float = SPAN_GAP_S) -> dict[int, float]:
    """Speaker -> seconds of speech (sum of their spans)."""
    return {
        spk: round(sum(e - s for s, e in spans), 2)
        for spk, spans in speaker_spans(words, max_gap).items()
    }
