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
    STEP_FRAMES,
    HalfWindowWhisper,
    encoded_frames,
)

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "meeting"


def _padded(content: int, full: int = 3000) -> np.ndarray:
    """Features as faster-whisper hands them to `encode`: content, then zero padding."""
    f = np.zeros((1, 80, full), np.float32)
    f[..., :content] = -0.7  # a silent frame's log-Mel floor is not zero
    return f


def test_windows_are_encoded_to_their_content_and_a_margin_in_one_second_steps() -> None:
    fits = HALF_WINDOW_FRAMES - MARGIN_FRAMES
    assert encoded_frames(_padded(200)) == HALF_WINDOW_FRAMES
    assert encoded_frames(_padded(fits)) == HALF_WINDOW_FRAMES
    # Past that, the content and the margin, rounded up to the next step.
    assert encoded_frames(_padded(fits + 1)) == HALF_WINDOW_FRAMES + STEP_FRAMES
    assert encoded_frames(_padded(1852)) == 2400
    assert encoded_frames(_padded(1900)) == 2400
    # Content within the margin of the end would leave whisper no padding to stop at.
    assert encoded_frames(_padded(3000 - MARGIN_FRAMES - STEP_FRAMES + 1)) == 3000
    assert encoded_frames(_padded(2700)) == 3000
    assert encoded_frames(_padded(3000)) == 3000
    assert encoded_frames(_padded(1200, full=1200)) == 1200  # already short: left alone
    # A batch is cut to its longest member.
    assert encoded_frames(np.concatenate([_padded(300), _padded(2000)])) == 2500
    assert encoded_frames(np.concatenate([_padded(300), _padded(900)])) == HALF_WINDOW_FRAMES
    # Silence inside the content is not padding: only the zeros at the end are.
    gap = _padded(2000)
    gap[..., 800:1600] = 0.0
    gap[..., 1200] = -0.7
    assert encoded_frames(gap) == 2500


class _Counting(HalfWindowWhisper):
    seen: list[int]

    def encode(self, features: np.ndarray) -> object:
        self.seen.append(encoded_frames(features))
        return super().encode(features)


Words = list[tuple[str, float, float]]
OPTS = {"language": "en", "beam_size": 1, "word_timestamps": True, "temperature": 0.0}


@pytest.fixture(scope="module")
def models() -> tuple[_Counting, WhisperModel]:
    """Ours (counting the frames each pass encodes) and faster-whisper's, same weights."""
    model_dir = str(default_model_path())
    ours = _Counting(model_dir, compute_type="int8", cpu_threads=1, local_files_only=True)
    upstream = WhisperModel(model_dir, compute_type="int8", cpu_threads=1, local_files_only=True)
    return ours, upstream


def _both(models: tuple[_Counting, WhisperModel], clip: np.ndarray) -> tuple[Words, Words]:
    """(ours, upstream) words of the clip; `models[0].seen`: the frames of each of our passes."""
    ours, upstream = models
    ours.seen = []
    out = []
    for model in (ours, upstream):
        segments, _ = model.transcribe(clip, **OPTS)
        out.append([(w.word, w.start, w.end) for s in segments for w in s.words or []])
    return out[0], out[1]


@pytest.mark.slow
def test_a_short_window_gives_faster_whispers_words_from_half_the_frames(
    models: tuple[_Counting, WhisperModel],
) -> None:
    audio = decode_audio(str(FIXTURE / "carol.ogg"), sampling_rate=16000)
    # Carol's first sentence (5.2-8.6 s into her track): one window, mostly padding.
    clip = audio[round(4.5 * 16000) : round(10.5 * 16000)]
    said = ["Hello everyone. I just talked to our biggest customers."]
    short, full = _both(models, clip)
    assert set(models[0].seen) == {HALF_WINDOW_FRAMES}
    assert len(short) >= 5
    ours_wer = word_error_rate(said, [w for w, _, _ in short])
    assert ours_wer <= word_error_rate(said, [w for w, _, _ in full]) and ours_wer <= 0.2
    # Word times come from the cross-attention over the frames actually encoded.
    assert max(abs(a[1] - b[1]) for a, b in zip(short, full, strict=True)) <= 0.2


@pytest.mark.slow
def test_a_window_two_thirds_full_gives_faster_whispers_words_from_fewer_frames(
    models: tuple[_Counting, WhisperModel],
) -> None:
    # Alice's first 18 s: three sentences, one window with 12 s of padding.
    clip = decode_audio(str(FIXTURE / "alice.webm"), sampling_rate=16000)[: 18 * 16000]
    short, full = _both(models, clip)
    assert models[0].seen[0] == 2300  # 18 s of content and the 5-s margin
    assert len(short) >= 20
    assert [w for w, _, _ in short] == [w for w, _, _ in full]
    assert max(abs(a[1] - b[1]) for a, b in zip(short, full, strict=True)) <= 0.2
