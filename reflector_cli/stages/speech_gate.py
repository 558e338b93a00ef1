"""Stretches of a padded track that carry only other talkers' leak, found from every track's
level envelope before transcription, so transcribe_track neither runs the VAD nor decodes them.

On a meeting with crosstalk the VAD finds the other talkers' voices on every microphone, so
each track was transcribed for the whole meeting and crosstalk suppression (at merge) dropped
the leaked words afterwards. The evidence is the one suppression uses (levels.excess_db, here
per 10 ms frame of the smoothed levels, there per word): a frame is a leak frame when this
track's level is what the others' leak predicts (excess below MARGIN_DB) while another track is
the source (its excess at least MARGIN_DB higher). A stretch is skipped only when it holds no
own-voice evidence at all (the track's excess high for a syllable's length), and it keeps
GUARD_S at both ends for the VAD's padding and word edges. Without a known leak gain into the
track (clean tracks, one track, open laptops side by side) nothing is skipped.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from reflector_cli.stages.crosstalk import MARGIN_DB
from reflector_cli.stages.levels import Levels, excess_db, leak_gains, quiet_below_db, runs

# Own-voice evidence: well above the track's noise floor, and for a syllable's length (a reverb
# tail or a pause between the source's words is shorter).
OWN_ABOVE_FLOOR_DB = 10.0
OWN_MIN_S = 0.25
# Kept at both ends of a skipped stretch: the VAD pads speech by 0.4 s, word times overhang.
GUARD_S = 0.5
# A shorter skip saves little and only fragments the VAD's view.
MIN_SKIP_S = 1.0

Span = tuple[float, float]


def leak_skips(levels: Levels, track: int) -> list[Span]:
    """Stretches (seconds, meeting time) of `track` that only other talkers' leak fills."""
    if levels.tracks < 2 or levels.power.shape[1] == 0:
        return []
    gains = leak_gains(levels)
    if not np.isfinite(np.delete(gains[track], track)).any():
        return []  # no leak into this track is known: nothing to tell its own voice from
    smoothed, floors = levels.smoothed_db(), levels.floors_db()
    ex = excess_db(smoothed, gains, floors)
    s, floor = smoothed[track], float(floors[track])
    others = np.delete(ex, track, axis=0).max(axis=0)
    mine = ex[track]
    audible = s >= quiet_below_db(floor)
    leak = audible & (mine < MARGIN_DB) & (others >= mine + MARGIN_DB)
    own = ~leak & (mine >= MARGIN_DB) & (s >= floor + OWN_ABOVE_FLOOR_DB)
    own = _runs_at_least(own, round(OWN_MIN_S / levels.frame_s))
    guard = round(GUARD_S / levels.frame_s)
    skips: list[Span] = []
    n = len(own)
    for a, b in runs(~own):
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


def _runs_at_least(mask: np.ndarray, frames: int) -> np.ndarray:
    out = np.zeros_like(mask)
    for a, b in runs(mask):
        if b - a >= frames:
            out[a:b] = True
    return out
