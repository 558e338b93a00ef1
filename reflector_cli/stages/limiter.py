"""A look-ahead peak limiter for the mixdown: the sum of the tracks never passes CEILING, and only
the moments that would are turned down, as the audio streams through.

It replaces a normalisation by the peak of the whole sum, which needed the whole sum on disk
before the first frame could be encoded, and let one loud laugh quieten a whole meeting.
The gain is decided per 10-ms frame: the frame's requirement (CEILING over its peak, at most 1),
the minimum of that over HOLD frames either side, a moving average of the result over RAMP
frames either side, and straight lines between frame centres. Every mean of minimums that all
include a frame's requirement stays at or below it (HOLD > RAMP), so no sample passes the
ceiling, and the gain moves in ramps of 2·RAMP + 1 frames instead of jumps.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

CEILING = 0.98
RAMP = 5  # frames either side: the gain changes over ~110 ms
HOLD = RAMP + 1
# The largest float32 not above CEILING (float32(0.98) itself is 2e-8 above it).
_TOP = np.nextafter(np.float32(CEILING), np.float32(0))
# Frames of requirements needed beyond a frame to know its gain and its right neighbour's.
REACH = HOLD + RAMP + 1


class Limiter:
    """Limits float mono blocks at `rate`; the output is the input's length, REACH frames late
    while streaming (everything comes out at `finish`)."""

    def __init__(self, rate: int) -> None:
        self.frame = rate // 100
        self.need = np.ones(REACH, dtype=np.float64)  # requirements from frame e0 - REACH on
        self.pending = np.zeros(0, dtype=np.float32)  # samples from frame e0 on
        self.lowest = 1.0  # the lowest gain applied

    def feed(self, blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        for block in blocks:
            self.pending = np.concatenate([self.pending, block.astype(np.float32, copy=False)])
            done = len(self.need) - REACH  # frames whose requirement is known
            whole = len(self.pending) // self.frame
            if whole > done:
                self.need = np.concatenate([self.need, self._needs(done, whole)])
            ready = len(self.need) - 2 * REACH  # frames whose gain and neighbour's are known
            if ready > 0:
                yield self._emit(ready)

    def finish(self) -> Iterator[np.ndarray]:
        """The rest: a last partial frame, with silence assumed after the end."""
        done = len(self.need) - REACH
        frames = -(-len(self.pending) // self.frame)
        if frames > done:
            self.need = np.concatenate([self.need, self._needs(done, frames)])
        if frames:
            self.need = np.concatenate([self.need, np.ones(REACH)])
            yield self._emit(frames)

    def _needs(self, first: int, stop: int) -> np.ndarray:
        """Requirements of pending frames [first, stop) (the last may be partial)."""
        x = self.pending[first * self.frame : stop * self.frame]
        padded = np.zeros((stop - first) * self.frame, dtype=np.float32)
        padded[: len(x)] = np.abs(x)
        peaks = padded.reshape(stop - first, self.frame).max(axis=1).astype(np.float64)
        return np.minimum(1.0, CEILING / np.maximum(peaks, 1e-12))

    def _emit(self, frames: int) -> np.ndarray:
        """Limit and return the first `frames` pending frames; drop what is no longer needed."""
        # Mins over ±HOLD, then means over ±RAMP: the gains of frames e0-1 ... e0+frames.
        mins = sliding_window_view(self.need[: frames + 2 * REACH], 2 * HOLD + 1).min(axis=1)
        sums = np.concatenate([[0.0], np.cumsum(mins)])
        gains = (sums[2 * RAMP + 1 :] - sums[: -2 * RAMP - 1]) / (2 * RAMP + 1)
        n = min(frames * self.frame, len(self.pending))
        if gains[: frames + 2].min() >= 1.0:  # most of a meeting: every frame below the ceiling
            out = self.pending[:n].copy()
        else:
            centres = (np.arange(-1, frames + 1) + 0.5) * self.frame
            gain = np.interp(np.arange(n) + 0.5, centres, gains[: frames + 2])
            self.lowest = min(self.lowest, float(gains[1 : frames + 1].min()))
            out = np.clip(self.pending[:n] * gain.astype(np.float32), -_TOP, _TOP)
        self.pending = self.pending[n:]
        self.need = self.need[frames:]
        return out
