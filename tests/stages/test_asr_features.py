"""Bounded Whisper features: bit for bit faster-whisper's, without a whole spectrum in memory."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from faster_whisper import decode_audio
from faster_whisper.feature_extractor import FeatureExtractor

from reflector_cli.stages.asr_features import BLOCK_FRAMES, BoundedFeatures

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "meeting"


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return np.concatenate([decode_audio(str(p)) for p in sorted(FIXTURE.glob("*.*"))[:2]])


@pytest.mark.parametrize("samples", [1, 239, 240, 241, 400, 16000, 480_000, 480_017, None])
def test_identical_to_faster_whisper(speech: np.ndarray, samples: int | None) -> None:
    audio = speech[:samples]
    if samples is None:
        assert audio.size > 3 * BLOCK_FRAMES * 160  # several blocks and a partial one
    ref = FeatureExtractor(feature_size=80)
    got = BoundedFeatures.like(FeatureExtractor(feature_size=80))(audio)
    want = ref(audio)
    assert got.shape == want.shape and got.dtype == want.dtype
    assert np.array_equal(got, want)


def test_chunk_length_is_applied_like_upstream(speech: np.ndarray) -> None:
    ours = BoundedFeatures.like(FeatureExtractor(feature_size=80))
    ref = FeatureExtractor(feature_size=80)
    clip = speech[:32000]
    assert np.array_equal(ours(clip, chunk_length=10), ref(clip, chunk_length=10))
    assert (ours.n_samples, ours.nb_max_frames) == (ref.n_samples, ref.nb_max_frames)


def _peak(fn, audio: np.ndarray) -> int:
    tracemalloc.start()
    try:
        fn(audio)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_long_decode_needs_a_fraction_of_upstreams_memory(speech: np.ndarray) -> None:
    audio = np.resize(speech, 16000 * 300)  # one 5-minute decode group (GROUP_SPEECH_S)
    upstream = _peak(FeatureExtractor(feature_size=80), audio)
    ours = _peak(BoundedFeatures.like(FeatureExtractor(feature_size=80)), audio)
    assert ours < upstream / 3, (ours >> 20, upstream >> 20)
