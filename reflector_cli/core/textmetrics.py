"""Word-level comparison of transcripts (WER), used by replay diffs and provider comparisons."""

from __future__ import annotations

import re
from collections.abc import Sequence

from rapidfuzz.distance import Levenshtein

_PUNCT = re.compile(r"[^\w' ]+")


def normalize_words(words: Sequence[str]) -> list[str]:
    """Lower-case, punctuation stripped, so "Friday." and "friday" count as the same word."""
    return _PUNCT.sub(" ", " ".join(words).lower()).split()


def edit_distance(ref: Sequence[str], hyp: Sequence[str]) -> int:
    """Word-level Levenshtein distance (substitutions, insertions, deletions), in C."""
    return Levenshtein.distance(list(ref), list(hyp))


def word_error_rate(ref: Sequence[str], hyp: Sequence[str]) -> float:
    """Edits needed to turn `ref` into `hyp`, over the length of `ref` (0.0 when both empty)."""
    a, b = normalize_words(ref), normalize_words(hyp)
    if not a:
        return 0.0 if not b else 1.0
    return edit_distance(a, b) / len(a)
