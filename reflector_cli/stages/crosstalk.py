"""Crosstalk suppression: drop words a microphone picked up from another participant.

Every decision is relative, so it holds whatever the microphones' gains or the speakers' voices:

* level — for each track, its "excess": its level over the word's span minus the level that the
  other tracks' leak would predict there (their level plus the leak gain measured from this very
  meeting, see levels.leak_gains). A talker's own microphone carries energy the leak model cannot
  explain (excess well above 0 dB); a microphone carrying only someone else's voice has an excess
  near 0 dB. A word is crosstalk when its own track's excess is below MARGIN_DB while another
  track's excess is at least MARGIN_DB higher: another talker is the source there, and this
  microphone only echoes them. Two people talking at once each keep a large excess on their own
  microphone (both kept); a quiet speaker talking alone is the only source (kept); a backchannel
  over someone's speech still adds energy the leak cannot explain (kept).
* text — the same words at about the same time on another track. That is independent evidence,
  so it is enough for the other track to be the source by half the margin (leak gains drift with
  automatic gain control); a single matching word is not evidence ("yeah" twice is a
  conversation), two or more words consecutive on both tracks are.
* runs — leaks come in runs: one word judged a leak by level alone amid its track's kept
  speech stays; one kept word amid a run leaked from one source, with no energy of its own,
  goes.

MARGIN_DB = 6 dB is a factor of 4 in power: far above frame-to-frame level noise over a word's
span, far below the 15-30 dB that separates a close microphone from a leak.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from reflector_cli.core.models import CrosstalkWord, Word
from reflector_cli.core.textmetrics import normalize_words
from reflector_cli.stages.levels import Levels, excess_db, leak_gains

MARGIN_DB = 6.0
# Word times from separate recognisers of the same speech agree within a few hundred ms.
DUP_TOL_S = 1.0
# Widen each word's span a little: recogniser boundaries are rough; level comparisons are over
# the same span on every track, so widening never favours one of them.
SPAN_PAD_S = 0.05
# A word between two words removed as crosstalk from the same source, within this gap.
RUN_GAP_S = 1.0


@dataclass(frozen=True)
class Result:
    kept: list[list[Word]]
    removed: list[CrosstalkWord]
    counts: list[int]


class _Model:
    """Per-track excess over the leak model, for any span of the meeting."""

    def __init__(self, levels: Levels) -> None:
        self.levels = levels
        self.gains = leak_gains(levels)
        self.floors = levels.floors_db()

    def excess(self, start: float, end: float) -> np.ndarray:
        s = self.levels.span_db(start - SPAN_PAD_S, end + SPAN_PAD_S)
        return excess_db(s, self.gains, self.floors)


def _token(text: str) -> str:
    return "".join(normalize_words([text]))


def duplicated(words: Sequence[Word], other: Sequence[Word], tol: float = DUP_TOL_S) -> list[bool]:
    """Per word of `words`: it and a neighbour appear in `other` as neighbours too, at about the
    same time: a phrase heard twice, not just a common word said by two people."""
    order = sorted(range(len(other)), key=lambda k: other[k].start)
    starts = [other[k].start for k in order]
    tokens = [_token(other[k].text) for k in order]

    def matches(w: Word) -> set[int]:
        tok = _token(w.text)
        lo, hi = bisect_left(starts, w.start - tol), bisect_right(starts, w.start + tol)
        return {k for k in range(lo, hi) if tok and tokens[k] == tok}

    m = [matches(w) for w in words]

    def linked(x: int) -> bool:  # words x and x+1 here are consecutive there too
        return any(k + 1 in m[x + 1] for k in m[x])

    n = len(words)
    return [(x > 0 and linked(x - 1)) or (x + 1 < n and linked(x)) for x in range(n)]


def _verdict(ex: np.ndarray, row: int, dup_rows: list[int]) -> tuple[str, int] | None:
    others = [k for k in range(len(ex)) if k != row]
    if not others:
        return None
    src = max(others, key=lambda k: ex[k])
    if ex[row] < MARGIN_DB and ex[src] - ex[row] >= MARGIN_DB:
        return "level", src
    for k in dup_rows:
        if ex[row] < 2 * MARGIN_DB and ex[k] - ex[row] >= MARGIN_DB / 2:
            return "text", k
    return None


def suppress(
    per_track: Sequence[Sequence[Word]], levels: Levels, speakers: Sequence[int]
) -> Result:
    """Split each track's words into kept and crosstalk; row k of `per_track` and of `levels`
    is the track of speaker `speakers[k]`."""
    model = _Model(levels)
    removed: list[CrosstalkWord] = []
    kept: list[list[Word]] = []
    for row, words in enumerate(per_track):
        dups = {k: duplicated(words, per_track[k]) for k in range(len(per_track)) if k != row}
        marks: list[tuple[str, int, float] | None] = []
        for x, w in enumerate(words):
            ex = model.excess(w.start, w.end)
            v = _verdict(ex, row, [k for k, d in dups.items() if d[x]])
            marks.append(None if v is None else (v[0], v[1], float(ex[row])))
        _keep_isolated(words, marks)
        _fill_runs(words, marks, model, row)
        kept.append([w for w, mk in zip(words, marks, strict=True) if mk is None])
        removed.extend(
            CrosstalkWord(
                text=w.text,
                start=w.start,
                end=w.end,
                speaker=w.speaker,
                source=speakers[mk[1]],
                reason=mk[0],
                excess_db=round(mk[2], 1),
            )
            for w, mk in zip(words, marks, strict=True)
            if mk is not None
        )
    counts = [len(words) - len(k) for words, k in zip(per_track, kept, strict=True)]
    return Result(kept=kept, removed=removed, counts=counts)


def _neighbours(words: Sequence[Word], x: int) -> list[int]:
    """Indices of the words right before and after word x, when within RUN_GAP_S of it."""
    out = []
    if x > 0 and words[x].start - words[x - 1].end <= RUN_GAP_S:
        out.append(x - 1)
    if x + 1 < len(words) and words[x + 1].start - words[x].end <= RUN_GAP_S:
        out.append(x + 1)
    return out


def _keep_isolated(words: Sequence[Word], marks: list[tuple[str, int, float] | None]) -> None:
    """Leaks come in runs; one word judged a leak by level alone inside the track's own kept
    speech is a soft syllable under a louder talker, so it stays."""
    isolated = [
        x
        for x, mk in enumerate(marks)
        if mk is not None
        and mk[0] == "level"
        and (near := _neighbours(words, x))
        and all(marks[k] is None for k in near)
    ]
    for x in isolated:
        marks[x] = None


def _fill_runs(
    words: Sequence[Word], marks: list[tuple[str, int, float] | None], model: _Model, row: int
) -> None:
    """A word between two words of crosstalk from one source, with no energy of its own, is part
    of that run (its recognised time slipped into a pause of the source)."""
    for x in range(1, len(words) - 1):
        prev, nxt = marks[x - 1], marks[x + 1]
        if marks[x] is not None or prev is None or nxt is None or prev[1] != nxt[1]:
            continue
        if words[x + 1].start - words[x - 1].end > RUN_GAP_S:
            continue
        ex = model.excess(words[x].start, words[x].end)
        if ex[row] < MARGIN_DB:
            marks[x] = ("run", prev[1], float(ex[row]))
