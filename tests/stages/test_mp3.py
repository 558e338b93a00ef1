"""The mixdown's MP3 encode in two halves on real speech: it must decode to the one-pass samples."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest

from reflector_cli.stages import mp3

RATE = 48000
FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "meeting"


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """~150 s of the fixture's real voices at 48 kHz (its three tracks, end to end, twice)."""
    parts = []
    for name in ("alice.webm", "bob.mp3", "carol.ogg"):
        with av.open(str(FIXTURE / name)) as c:
            rs = av.AudioResampler(format="flt", layout="mono", rate=RATE)
            parts += [g.to_ndarray()[0] for f in c.decode(audio=0) for g in rs.resample(f)]
    once = np.concatenate(parts)
    return np.concatenate([once, once])[: 150 * RATE] * np.float32(0.8)


def _encode(x: np.ndarray, **kwargs: object) -> tuple[bytes, bool, list[float]]:
    def read(start: int, stop: int | None) -> Iterator[np.ndarray]:
        end = len(x) if stop is None else min(stop, len(x))
        for i in range(start, end, RATE):
            yield x[i : min(i + RATE, end)]

    buf, progress = io.BytesIO(), []
    with av.open(buf, "w", "mp3") as out:
        joined = mp3.encode(out, read, len(x), RATE, progress.append, 60.0, **kwargs)  # type: ignore[arg-type]
    return buf.getvalue(), joined, progress


def _decode(data: bytes) -> np.ndarray:
    with av.open(io.BytesIO(data)) as c:
        return np.concatenate([f.to_ndarray()[0] for f in c.decode(audio=0)])


# With 2 frames of warm-up the second encoder's bytes still differ from the first's at the
# join, so only the copied reservoir makes the join frame decode right.
@pytest.mark.parametrize("warmup", [mp3.WARMUP_FRAMES, 2])
def test_two_halves_decode_to_the_one_pass_samples(speech: np.ndarray, warmup: int) -> None:
    whole, joined_whole, _ = _encode(speech, split=False)
    halves, joined, _ = _encode(speech, split=True, warmup_frames=warmup)
    assert not joined_whole and joined
    one, two = _decode(whole), _decode(halves)
    # The LAME tag's end padding is carried over: decoders trim both to the input's length.
    assert len(one) == len(two) == pytest.approx(len(speech) * 2 / 3, abs=2)
    # Around the middle: the join frame decodes (its reservoir bytes are the second half's)...
    mid = slice(len(one) // 2 - 16000, len(one) // 2 + 48000)
    err = float(np.sqrt(np.mean((one[mid] - two[mid]) ** 2)) / np.sqrt(np.mean(one[mid] ** 2)))
    assert err < 0.05
    # ...and after the default warm-up LAME has converged: the same samples throughout.
    if warmup == mp3.WARMUP_FRAMES:
        assert float(np.abs(one - two).max()) < 1e-4


def test_no_frame_to_join_at_gives_the_one_pass_file(speech: np.ndarray) -> None:
    whole, _, _ = _encode(speech, split=False)
    fallback, joined, _ = _encode(speech, split=True, search_frames=0)
    assert not joined
    assert fallback == whole


def test_progress_counts_both_halves_once_a_minute_up_to_the_length(speech: np.ndarray) -> None:
    _, joined, progress = _encode(speech, split=True)
    assert joined
    # Reported from the caller's thread only, so in order; the second half's samples count.
    assert progress and progress == sorted(set(progress))
    assert 60 <= progress[0] < 120 and progress[-1] <= 150
    # A fallback encodes the overlap twice: still never past the recording's length.
    _, joined, progress = _encode(speech, split=True, search_frames=0)
    assert not joined
    assert progress == sorted(set(progress)) and 120 <= progress[-1] <= 150


def test_short_recordings_are_encoded_in_one_pass(speech: np.ndarray) -> None:
    short = speech[: 30 * RATE]
    assert not mp3.split_worthwhile(len(short), RATE)
    _, joined, _ = _encode(short)
    assert not joined
