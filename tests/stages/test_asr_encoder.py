"""The half-window encoder: which windows it shortens, and that a short window transcribes to the
same words as faster-whisper's full padded window, with the real tiny.en model on real speech."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from faster_whisper import WhisperModel, decode_audio

from reflector_cli.core.config import default_model_path
from reflector_cli.core.textmetrics import word_error_rate
from reflector_cli.stages.asr_encoder import (
    HALF_WINDOW_FRAMES,
    MARGIN_FRAMES,
    HalfWindowWhisper,
    encoded_frames,
)

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "meeting"


def _padded(content: int, full: int = 3000) -> np.ndarray:
    """Features as faster-whisper hands them to `encode`: content, then zero padding."""
    f = np.zeros((1, 80, full), np.float32)
    f[..., :content] = -0.7  # a silent frame's log-Mel floor is not zero
    return f


def test_only_windows_whose_content_leaves_padding_in_half_a_window_are_shortened() -> None:
    fits = HALF_WINDOW_FRAMES - MARGIN_FRAMES
    assert encoded_frames(_padded(200)) == HALF_WINDOW_FRAMES
    assert encoded_frames(_padded(fits)) == HALF_WINDOW_FRAMES
    # Content up to the end of the half window would leave whisper no padding to stop at.
    assert encoded_frames(_padded(fits + 1)) == 3000
    assert encoded_frames(_padded(HALF_WINDOW_FRAMES)) == 3000
    assert encoded_frames(_padded(3000)) == 3000
    assert encoded_frames(_padded(1200, full=1200)) == 1200  # already short: left alone
    # A batch is cut to its longest member.
    assert encoded_frames(np.concatenate([_padded(300), _padded(2000)])) == 3000
    assert encoded_frames(np.concatenate([_padded(300), _padded(900)])) == HALF_WINDOW_FRAMES


class _Counting(HalfWindowWhisper):
    seen: list[int]

    def encode(self, features: np.ndarray) -> object:
        self.seen.append(encoded_frames(features))
        return super().encode(features)


@pytest.mark.slow
def test_a_short_window_gives_faster_whispers_words_from_half_the_frames() -> None:
    model_dir = str(default_model_path())
    ours = _Counting(model_dir, compute_type="int8", cpu_threads=1, local_files_only=True)
    ours.seen = []
    upstream = WhisperModel(model_dir, compute_type="int8", cpu_threads=1, local_files_only=True)
    audio = decode_audio(str(FIXTURE / "carol.ogg"), sampling_rate=16000)
    # Carol's first sentence (5.2-8.6 s into her track): one window, mostly padding.
    clip = audio[round(4.5 * 16000) : round(10.5 * 16000)]
    said = ["Hello everyone. I just talked to our biggest customers."]
    opts = {"language": "en", "beam_size": 1, "word_timestamps": True, "temperature": 0.0}

    def words(model: WhisperModel) -> list[tuple[str, float, float]]:
        segments, _ = model.transcribe(clip, **opts)
        return [(w.word, w.start, w.end) for s in segments for w in s.words or []]

    short = words(ours)
    full = words(upstream)
    assert ours.seen and set(ours.seen) == {HALF_WINDOW_FRAMES}
    assert len(short) >= 5
    ours_wer = word_error_rate(said, [w for w, _, _ in short])
    assert ours_wer <= word_error_rate(said, [w for w, _, _ in full]) and ours_wer <= 0.2
    # Word times come from the cross-attention over the frames actually encoded.
    assert max(abs(a[1] - b[1]) for a, b in zip(short, full, strict=True)) <= 0.2
