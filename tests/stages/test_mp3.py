"""The mixdown's MP3 encode on real speech: the file decodes to exactly the samples given, at
their place, because decoders read our LAME tag's delay and padding."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import pytest

from reflector_cli.stages import mp3

RATE = 48000
FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "meeting"


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """~100 s of the fixture's real voices at 48 kHz (its three tracks, end to end)."""
    parts = []
    for name in ("alice.webm", "bob.mp3", "carol.ogg"):
        with av.open(str(FIXTURE / name)) as c:
            rs = av.AudioResampler(format="flt", layout="mono", rate=RATE)
            parts += [g.to_ndarray()[0] for f in c.decode(audio=0) for g in rs.resample(f)]
    return np.concatenate(parts)[: 100 * RATE] * np.float32(0.8)


def _encode(x: np.ndarray, block: int = RATE) -> tuple[bytes, int, list[float]]:
    buf, progress = io.BytesIO(), []
    blocks = (x[i : i + block] for i in range(0, len(x), block))
    taken = mp3.encode(buf, blocks, RATE, progress.append, 30.0)
    return buf.getvalue(), taken, progress


def _at_32k(x: np.ndarray) -> np.ndarray:
    rs = av.AudioResampler(format="flt", layout="mono", rate=mp3.MP3_RATE)
    frame = av.AudioFrame.from_ndarray(x[None, :], format="flt", layout="mono")
    frame.sample_rate = RATE
    return np.concatenate([f.to_ndarray()[0] for f in [*rs.resample(frame), *rs.resample(None)]])


def test_the_file_decodes_to_the_samples_given_in_place(speech: np.ndarray) -> None:
    data, taken, _ = _encode(speech)
    assert taken == len(speech)
    with av.open(io.BytesIO(data)) as c:
        stream = c.streams.audio[0]
        assert (stream.codec_context.sample_rate, stream.codec_context.channels) == (32000, 1)
        # The tag's checksum matched: FFmpeg only then reports its encoder field.
        assert stream.metadata.get("encoder") == "LAME3.100"
        out = np.concatenate([f.to_ndarray()[0] for f in c.decode(stream)])
    ref = _at_32k(speech)
    # The encoder's delay and padding are trimmed: not one sample more or less.
    assert len(out) == len(ref) == len(speech) * 2 // 3
    # In place: the decoded speech lines up with the input at lag 0, within lossy error.
    inner = slice(2000, len(ref) - 2000)
    lags = range(-8, 9)
    scores = [float(np.dot(out[inner.start + k : inner.stop + k], ref[inner])) for k in lags]
    assert list(lags)[int(np.argmax(scores))] == 0
    err = np.sqrt(np.mean((out - ref) ** 2)) / np.sqrt(np.mean(ref**2))
    assert err < 0.3
    # Constant bitrate: 64 kb/s, every frame the same size after the tag frame.
    assert data.startswith(mp3.id3_header())
    assert (len(data) - len(mp3.id3_header())) % mp3.FRAME_BYTES == 0
    assert len(data) * 8 / (len(speech) / RATE) == pytest.approx(64000, rel=0.03)


def test_block_sizes_do_not_change_the_file(speech: np.ndarray) -> None:
    x = speech[: 20 * RATE]
    assert _encode(x, block=RATE)[0] == _encode(x, block=4321)[0]


def test_progress_in_order_every_interval_up_to_the_length(speech: np.ndarray) -> None:
    _, _, progress = _encode(speech)
    assert progress == [30.0, 60.0, 90.0]


@pytest.mark.parametrize("n", [100, 1727, 3457])
def test_a_mix_shorter_than_two_frames_still_decodes_to_its_length(n: int) -> None:
    x = np.full(n, 0.25, np.float32)  # 2 ms, 36 ms, 72 ms
    data, _, _ = _encode(x)
    with av.open(io.BytesIO(data)) as c:
        assert c.streams.audio[0].metadata.get("encoder") == "LAME3.100"
        out = np.concatenate([f.to_ndarray()[0] for f in c.decode(audio=0)])
    assert abs(len(out) - n * 2 / 3) <= 1


def test_the_tag_refuses_counts_that_cannot_be_trimmed() -> None:
    with pytest.raises(ValueError, match="cannot tag"):
        mp3.info_frame(b"\xff\xfb\x58\xc4", frames=1, size=576, samples=10_000)
