"""The whisper model with a cheaper encoder pass for windows that are not full: the encoder
sees the window's content and 5 s of its padding, not all 30 s.

CTranslate2's encoder takes any length up to 3000 frames, and its cost grows much faster than
the length (tiny.en int8, one thread: 1500 frames 0.09 s, 2000 0.14 s, 2300 0.18 s, 3000 0.35 s).
Per-track transcription ends every group of speech with a partial window, and short tracks have
little else. Whisper needs padding after the audio to see where it ends: content that filled the
whole shortened window looped ("...after the launch" four times), so MARGIN_FRAMES of padding
stay, as in a full window with 25 s of audio. Measured first with two lengths only (15 s for at
most 10 s of content, else 30 s) on the fixture, the real-read meeting, its crosstalk and overlap
variants and a generated 5-minute meeting: the same word error rate on every one, 10-20 % less
ASR CPU; lengths in 1-s steps between them: see benchmarks/README.md (ninth session).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from faster_whisper import WhisperModel

HALF_WINDOW_FRAMES = 1500  # the shortest pass: below it the saving is small
MARGIN_FRAMES = 500  # 5 s of padding after the content, as in a full window with 25 s of audio
STEP_FRAMES = 100  # lengths in 1-s steps: what little a finer step saves is not worth more shapes


def encoded_frames(features: np.ndarray) -> int:
    """Frames to encode: the content (up to the zero padding faster-whisper appends to reach
    3000 frames; in a batch, the longest) and MARGIN_FRAMES of padding, in STEP_FRAMES steps,
    at least HALF_WINDOW_FRAMES and at most all of them."""
    full = features.shape[-1]
    if full <= HALF_WINDOW_FRAMES:
        return full
    # A log-Mel frame of real audio, even digital silence, is never all zeros (the floor is
    # the clamp below the maximum); only the padding is.
    filled = np.flatnonzero(np.any(features.reshape(-1, full), axis=0))
    content = int(filled[-1]) + 1 if filled.size else 0
    steps = -(-(content + MARGIN_FRAMES) // STEP_FRAMES)
    return min(full, max(HALF_WINDOW_FRAMES, steps * STEP_FRAMES))


class HalfWindowWhisper(WhisperModel):
    """faster-whisper's WhisperModel; `encode` skips most of a window's padding."""

    def encode(self, features: np.ndarray) -> Any:
        frames = encoded_frames(features)
        if frames < features.shape[-1]:
            features = features[..., :frames]  # upstream makes it contiguous for CTranslate2
        return super().encode(features)
