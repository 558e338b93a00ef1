"""Shared test helpers: synthesise real audio (and video-only) files with PyAV, and a stage context.

Files are encoded for real, so tests exercise the same decoders the pipeline uses on user input.
Helpers are handed out as fixtures (`make_track`, `make_video_only`, `read_audio`) because
`from conftest import ...` is ambiguous when several test folders have a conftest.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from reflector_cli.core.config import load_settings
from reflector_cli.stages.context import StageContext
from reflector_cli.storage import LocalStorage

# extension -> (container format, audio codec, sample format the codec accepts)
_FORMATS: dict[str, tuple[str, str, str]] = {
    "wav": ("wav", "pcm_s16le", "s16"),
    "flac": ("flac", "flac", "s16"),
    "mka": ("matroska", "flac", "s16"),
    "webm": ("webm", "libopus", "s16"),
    "ogg": ("ogg", "libopus", "s16"),
    "opus": ("ogg", "libopus", "s16"),
    "mp3": ("mp3", "libmp3lame", "fltp"),
    "m4a": ("ipod", "aac", "fltp"),
}


def tone(seconds: float, freq: float, sample_rate: int, amplitude: float = 0.5) -> np.ndarray:
    """A mono sine as float32; freq 0 gives silence."""
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_track(
    path: Path,
    seconds: float,
    freq: float = 440.0,
    sample_rate: int = 48000,
    fmt: str | None = None,
    start_time: float | None = None,
    gap: tuple[float, float] | None = None,
    amplitude: float = 0.5,
) -> Path:
    """Encode `seconds` of tone to `path` (format from `fmt` or the extension).

    `start_time` makes the stream's first timestamp non-zero; `gap=(at_s, len_s)` jumps the
    timestamps by `len_s` after `at_s` seconds of audio, as a muted WebRTC stretch does.
    """
    path = Path(path)
    container_fmt, codec, sample_fmt = _FORMATS[(fmt or path.suffix.lstrip(".")).lower()]
    samples = tone(seconds, freq, sample_rate, amplitude)
    frame_len = 960 if codec == "libopus" else 1024
    pts = round((start_time or 0.0) * sample_rate)
    gap_at = round(gap[0] * sample_rate) if gap else -1
    with av.open(str(path), "w", format=container_fmt) as out:
        stream = out.add_stream(codec, rate=sample_rate)
        stream.layout = "mono"
        stream.format = sample_fmt
        for i in range(0, len(samples), frame_len):
            if gap and i >= gap_at > i - frame_len:
                pts += round(gap[1] * sample_rate)
            block = samples[i : i + frame_len]
            if sample_fmt == "s16":
                data = (block * 32767).astype(np.int16)[None, :]
            else:
                data = block[None, :]
            frame = av.AudioFrame.from_ndarray(data, format=sample_fmt, layout="mono")
            frame.sample_rate = sample_rate
            frame.pts = pts
            frame.time_base = Fraction(1, sample_rate)
            pts += len(block)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def write_video_only(path: Path, frames: int = 10) -> Path:
    """An MP4 with a single video stream and no audio."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for i in range(frames):
            img = np.full((64, 64, 3), i * 20 % 255, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def decode_mono(path: Path) -> tuple[np.ndarray, int]:
    """Decode a whole (small) file to mono float32 with PyAV, for assertions."""
    with av.open(str(path)) as c:
        stream = c.streams.audio[0]
        rs = av.AudioResampler(format="flt", layout="mono", rate=stream.rate)
        chunks = [f.to_ndarray()[0] for frame in c.decode(stream) for f in rs.resample(frame)]
        chunks += [f.to_ndarray()[0] for f in rs.resample(None)]
        return np.concatenate(chunks), stream.rate


@pytest.fixture(scope="session", autouse=True)
def _own_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The suite's int8 model copies live in its own models dir (inherited by every CLI and
    worker it starts), never in the user's cache; the bundled model's copy is written once
    here, so no test's timing includes it."""
    from reflector_cli.core.config import default_model_path
    from reflector_cli.stages.asr_weights import prepare

    root = tmp_path_factory.mktemp("models")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REFLECTOR_MODELS_DIR", str(root))
        assert prepare(Path(default_model_path())).path is not None
        yield


@pytest.fixture(autouse=True)
def _fresh_probes() -> Iterator[None]:
    """Each test measures its files itself: no probe remembered from another test."""
    from reflector_cli.sources import folder

    folder._PROBED.clear()
    yield
    folder._PROBED.clear()


@pytest.fixture
def ctx(tmp_path: Path) -> StageContext:
    """A stage context over LocalStorage in a fresh data dir."""
    data = tmp_path / "data"
    data.mkdir()
    return StageContext(storage=LocalStorage(data), settings=load_settings(data_dir=data))


@pytest.fixture
def make_track() -> Callable[..., Path]:
    return write_track


@pytest.fixture
def make_video_only() -> Callable[..., Path]:
    return write_video_only


@pytest.fixture
def read_audio() -> Callable[[Path], tuple[np.ndarray, int]]:
    return decode_mono


@pytest.fixture
def no_retry_waits() -> Iterator[None]:
    """stamina's test mode: every retry happens, its wait is skipped (callers still hear of it
    through their `on_wait`)."""
    import stamina

    with stamina.set_testing(True, attempts=1000, cap=True):
        yield
