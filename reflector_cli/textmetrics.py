"""Word-level comparison of transcripts (WER), used by replay diffs and provider comparisons."""

from __future__ import annotations

import re
from collections.abc import Sequence

_PUNCT = re.compile(r"[^\w' ]+")


def normalize_words(words: Sequence[str]) -> list[str]:
    """Lower-case, punctuation stripped, so "Friday." and "friday" count as the same word."""
    return _PUNCT.sub(" ", " ".join(words).lower()).split()


def edit_distance(ref: Sequence[str], hyp: Sequence[str]) -> int:
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        diag, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            diag, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diag + (r != h))
    return row[len(hyp)]


def word_error_rate(ref: Sequence[str], hyp: Sequence[str]) -> float:
    """Edits needed to turn `ref` into `hyp`, over the length of `ref` (0.0 when both empty)."""
    a, b = normalize_words(ref), normalize_words(hyp)
    if not a:
        return 0.0 if not b else 1.0
    return edit_distance(a, b) / len(a)
