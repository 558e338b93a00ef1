"""Bounded-batch Silero VAD against faster-whisper's own get_speech_timestamps on real speech."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from faster_whisper import decode_audio
from faster_whisper.vad import VadOptions, get_speech_timestamps

from reflector_cli.stages import vad

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "meeting"


@pytest.fixture(scope="module")
def meeting() -> np.ndarray:
    """The fixture's tracks end to end at 16 kHz: ~3 minutes of speech and pauses."""
    return np.concatenate([decode_audio(str(p)) for p in sorted(FIXTURE.glob("*.*"))[:3]])


@pytest.mark.parametrize("max_speech_s", [float("inf"), 600.0, 3.0])
def test_the_same_regions_as_faster_whisper(meeting: np.ndarray, max_speech_s: float) -> None:
    opts = VadOptions(max_speech_duration_s=max_speech_s)
    # Many ONNX calls: the recurrent state must carry over between them.
    assert meeting.size > 10 * vad.BATCH_FRAMES * vad.WINDOW
    ours = vad.speech_timestamps(meeting.copy(), opts)
    assert len(ours) > 10
    assert ours == get_speech_timestamps(meeting.copy(), opts)


@pytest.mark.parametrize("tail", [0, 1, 63, 64, 65, 511])
def test_any_length_the_same_as_faster_whisper(meeting: np.ndarray, tail: int) -> None:
    """Upstream zeroes the last frame's tail; audio ending just before a frame boundary shows
    it, so lengths around WINDOW and CONTEXT multiples are all compared."""
    audio = meeting[: 40 * vad.WINDOW * 50 + tail]
    opts = VadOptions()
    assert vad.speech_timestamps(audio.copy(), opts) == get_speech_timestamps(audio.copy(), opts)


def test_the_callers_audio_is_left_as_it_was(meeting: np.ndarray) -> None:
    audio = meeting[: 16000 * 20]
    before = audio.copy()
    vad.speech_timestamps(audio, VadOptions())
    assert np.array_equal(audio, before)
