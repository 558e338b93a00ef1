"""Stretches of a padded track that carry only other talkers' leak, found from every track's
level envelope before transcription, so transcribe_track neither runs the VAD nor decodes them.

On a meeting with crosstalk the VAD finds the other talkers' voices on every microphone, so
each track was transcribed for the whole meeting and crosstalk suppression (at merge) dropped
the leaked words afterwards. The evidence is the one suppression uses (see crosstalk): a frame
is a leak frame when this track's level is what the others' leak predicts (excess below
MARGIN_DB) while another track is the source (its excess at least MARGIN_DB higher). A stretch
is skipped only when it holds no own-voice evidence at all (the track's excess high for a
syllable's length), and it keeps GUARD_S at both ends for the VAD's padding and word edges.
Without leak gains (clean tracks, one track, open laptops side by side) nothing is skipped.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from reflector_cli.stages.crosstalk import MARGIN_DB
from reflector_cli.stages.levels import (
    QUIET_ABOVE_FLOOR_DB,
    QUIET_MAX_DBFS,
    Levels,
    leak_gains,
)

# Own-voice evidence: well above the track's noise floor, and for a syllable's length (a reverb
# tail or a pause between the source's words is shorter).
OWN_ABOVE_FLOOR_DB = 10.0
OWN_MIN_S = 0.25
# Kept at both ends of a skipped stretch: the VAD pads speech by 0.4 s, word times overhang.
GUARD_S = 0.5
# A shorter skip saves little and only fragments the VAD's view.
MIN_SKIP_S = 1.0

Span = tuple[float, float]


def excess_db(s: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """(tracks, frames): each track's smoothed level `s` above the loudest leak the others
    predict there; NaN where no other track has a known leak gain into it (no evidence)."""
    out = np.full_like(s, np.nan)
    n = len(s)
    for i in range(n):
        known = [j for j in range(n) if j != i and np.isfinite(gains[i, j])]
        if known:
            out[i] = s[i] - np.max(s[known] + gains[i, known, None], axis=0)
    return out


def leak_skips(levels: Levels, track: int) -> list[Span]:
    """Stretches (seconds, meeting time) of `track` that only other talkers' leak fills."""
    if levels.tracks < 2 or levels.power.shape[1] == 0:
        return []
    smoothed = levels.smoothed_db()
    ex = excess_db(smoothed, leak_gains(levels))
    s = smoothed[track]
    floor = float(levels.floors_db()[track])
    others = np.fmax.reduce(np.delete(ex, track, axis=0), axis=0)  # NaN only if all are
    mine = ex[track]
    audible = s >= min(floor + QUIET_ABOVE_FLOOR_DB, QUIET_MAX_DBFS)
    leak = audible & (mine < MARGIN_DB) & (others >= mine + MARGIN_DB)
    own = ~leak & (mine >= MARGIN_DB) & (s >= floor + OWN_ABOVE_FLOOR_DB)
    own = _runs_at_least(own, round(OWN_MIN_S / levels.frame_s))
    guard = round(GUARD_S / levels.frame_s)
    skips: list[Span] = []
    n = len(own)
    for a, b in _runs(~own):
        if not leak[a:b].any():
            continue
        # The whole stretch, quiet parts too: leak's reverb and pauses there hold no own words.
        ca, cb = (a + guard if a > 0 else 0), (b - guard if b < n else n)
        if (cb - ca) * levels.frame_s >= MIN_SKIP_S:
            skips.append((ca * levels.frame_s, cb * levels.frame_s))
    return skips


def without(spans: Sequence[Span], skips: Sequence[Span]) -> list[Span]:
    """`spans` with the (sorted, disjoint) `skips` cut out."""
    out: list[Span] = []
    for a, b in spans:
        pos = a
        for sa, sb in skips:
            if sb <= pos or sa >= b:
                continue
            if sa > pos:
                out.append((pos, sa))
            pos = max(pos, sb)
        if pos < b:
            out.append((pos, b))
    return out


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of every run of True."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.view(np.int8), [0]])))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _runs_at_least(mask: np.ndarray, frames: int) -> np.ndarray:
    out = np.zeros_like(mask)
    for a, b in _runs(mask):
        if b - a >= frames:
            out[a:b] = True
    return out
