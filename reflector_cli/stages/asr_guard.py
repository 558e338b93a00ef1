"""Phantom phrases: what whisper says over silence ("Thank you.", subtitle credits, "you").

A segment is dropped only when its text is such a phrase AND the audio under its words is
silence, so the same phrase really spoken is kept.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from reflector_cli.stages.asr_audio import RATE, rms_dbfs

# Below this the audio under the words is silence or a noise floor, never a voice.
SILENCE_DBFS = -45.0
PHANTOMS = frozenset(
    {
        "you",
        "thank you",
        "thanks",
        "thank you very much",
        "thank you so much",
        "thanks for watching",
        "thank you for watching",
        "thanks for watching bye",
        "please subscribe",
        "like and subscribe",
        "bye",
        "bye bye",
        "okay",
        "oh",
        "so",
        "the end",
        "music",
        "applause",
        "silence",
    }
)
# "Subtitles by the Amara.org community", "Transcription by ESO", "Untertitel von …"
CREDITS = re.compile(
    r"^(subtitles?|captions?|transcri(bed|ption|pt)|translated|untertitel|sous-titres?)\b"
    r".*\b(by|von|par|por)\b"
)


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s'-]", " ", text.lower()).split())


def phantom_text(text: str) -> bool:
    norm = _norm(text)
    return norm in PHANTOMS or bool(CREDITS.match(norm))


def is_phantom(text: str, words: Sequence[Any], audio: np.ndarray) -> bool:
    """A phantom phrase whose words (start/end in seconds of `audio`) lie over silence."""
    if not phantom_text(text):
        return False
    if not words:
        return True
    a = max(0, round(words[0].start * RATE))
    b = min(audio.size, round(words[-1].end * RATE))
    return rms_dbfs(audio[a:b]) < SILENCE_DBFS
