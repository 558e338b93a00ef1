"""Audio stages on real encoded files: padding, gap filling, mixdown and waveform."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import soundfile as sf

from reflector_cli.core.errors import UserError
from reflector_cli.core.models import (
    MixdownIn,
    PadTrackIn,
    PadTrackOut,
    TrackRef,
    WaveformIn,
)
from reflector_cli.stages import mp3
from reflector_cli.stages.audio import generate_waveform, mixdown_tracks, pad_track
from reflector_cli.stages.context import StageContext
from reflector_cli.stages.levels import envelope, from_bytes

RID = "rec-audio"


def ingest(ctx: StageContext, src: Path, index: int = 0, offset_s: float = 0.0) -> TrackRef:
    key = f"{RID}/raw/{index}-{src.name}"
    ctx.storage.put_file(key, src)
    return TrackRef(
        index=index, key=key, source_name=src.name, participant_id=f"p{index}", offset_s=offset_s
    )


def padded_audio(ctx: StageContext, out: PadTrackOut) -> tuple[np.ndarray, int]:
    with ctx.storage.local_path(out.key) as p:
        info = sf.info(str(p))
        assert (info.format, info.channels) == ("FLAC", 1)
        data, sr = sf.read(str(p), dtype="float32")
    return data, sr


def first_sound_s(x: np.ndarray, sr: int, threshold: float = 0.05) -> float:
    return int(np.argmax(np.abs(x) > threshold)) / sr


@pytest.mark.parametrize("ext", ["webm", "wav", "m4a"])
def test_pad_offset_lands_tone_at_offset(
    tmp_path: Path, ctx: StageContext, ext: str, make_track: Callable[..., Any]
) -> None:
    src = make_track(
        tmp_path / f"t.{ext}", 2.0, freq=440, sample_rate=44100 if ext == "wav" else 48000
    )
    out = pad_track(PadTrackIn(recording_id=RID, track=ingest(ctx, src, 1, 2.5)), ctx)
    assert out.key == f"{RID}/padded/track-1.flac" and out.track == 1
    data, sr = padded_audio(ctx, out)
    assert sr == out.sample_rate == 48000
    assert first_sound_s(data, sr) == pytest.approx(2.5, abs=0.01)
    assert np.abs(data[: int(2.49 * sr)]).max() == 0.0
    assert out.duration_s == pytest.approx(len(data) / sr)
    assert out.duration_s == pytest.approx(4.5, abs=0.03)


def test_pad_fills_timestamp_gaps(
    tmp_path: Path, ctx: StageContext, make_track: Callable[..., Any]
) -> None:
    # 3 s of tone whose timestamps jump 2 s after the first second (a muted stretch).
    src = make_track(tmp_path / "muted.webm", 3.0, gap=(1.0, 2.0))
    out = pad_track(PadTrackIn(recording_id=RID, track=ingest(ctx, src)), ctx)
    data, sr = padded_audio(ctx, out)
    assert out.duration_s == pytest.approx(5.0, abs=0.03)
    assert out.gaps_filled_s == pytest.approx(2.0, abs=0.03)
    assert np.abs(data[int(1.1 * sr) : int(2.9 * sr)]).max() == 0.0
    assert (
        np.abs(data[int(3.1 * sr) : int(4.9 * sr)]).min()
        < 0.05
        < np.abs(data[int(3.1 * sr) :]).max()
    )
    # Opus pre-skip moves the jump by one 13.5 ms packet; the tone resumes where pts say.
    assert first_sound_s(data[int(2.5 * sr) :], sr) + 2.5 == pytest.approx(3.0, abs=0.02)


@pytest.mark.parametrize("ext", ["webm", "mp3"])
def test_pad_stores_the_level_envelope_of_exactly_what_it_wrote(
    tmp_path: Path, ctx: StageContext, ext: str, make_track: Callable[..., Any]
) -> None:
    # An offset, a muted gap and a quiet tone (levels near 16-bit steps), as merge reads them.
    src = make_track(tmp_path / f"q.{ext}", 3.0, gap=(1.0, 0.7), amplitude=0.002)
    out = pad_track(PadTrackIn(recording_id=RID, track=ingest(ctx, src, 0, 1.234)), ctx)
    assert out.levels_key == f"{RID}/padded/track-0.levels.f32"
    stored = from_bytes(ctx.storage.read_bytes(out.levels_key))
    with ctx.storage.local_path(out.key) as p:
        decoded = envelope(p)
    assert len(stored) == len(decoded) == pytest.approx(out.duration_s * 100, abs=1)
    assert np.array_equal(stored, decoded)  # bit for bit: crosstalk decisions cannot move
    assert stored[:120].max() == 0.0 and stored[200:300].max() > 0.0


def test_pad_rejects_corrupt_and_video_only(
    tmp_path: Path, ctx: StageContext, make_video_only: Callable[..., Any]
) -> None:
    bad = tmp_path / "garbage.webm"
    bad.write_bytes(b"\x1aE\xdf\xa3" + bytes(range(256)) * 8)
    with pytest.raises(UserError, match="garbage.webm: ") as err:
        pad_track(PadTrackIn(recording_id=RID, track=ingest(ctx, bad)), ctx)
    assert "\n" not in str(err.value)
    video = make_video_only(tmp_path / "cam.mp4")
    with pytest.raises(UserError, match="cam.mp4: no audio stream"):
        pad_track(PadTrackIn(recording_id=RID, track=ingest(ctx, video, 1)), ctx)
    assert not ctx.storage.exists(f"{RID}/padded/track-0.flac")


def test_mixdown_is_mono_32k_mp3_without_clipping(
    tmp_path: Path,
    ctx: StageContext,
    make_track: Callable[..., Any],
    read_audio: Callable[..., Any],
) -> None:
    # Two loud in-phase tones sum to 1.8 full scale; the mix must be limited there, not
    # clipped, and left alone where it stays below full scale.
    a = pad_track(
        PadTrackIn(
            recording_id=RID,
            track=ingest(ctx, make_track(tmp_path / "a.flac", 3.0, amplitude=0.9), 0, 0.0),
        ),
        ctx,
    )
    b = pad_track(
        PadTrackIn(
            recording_id=RID,
            track=ingest(ctx, make_track(tmp_path / "b.flac", 3.0, amplitude=0.9), 1, 1.0),
        ),
        ctx,
    )
    # A 16 kHz track that skipped padding: mixdown must resample it, not drop it.
    c_src = make_track(tmp_path / "c.wav", 5.0, freq=300, sample_rate=16000, amplitude=0.3)
    c_key = f"{RID}/raw/2-c.wav"
    ctx.storage.put_file(c_key, c_src)
    c = PadTrackOut(track=2, key=c_key, duration_s=5.0, sample_rate=16000, offset_s=0.0)

    out = mixdown_tracks(MixdownIn(recording_id=RID, tracks=[a, b, c]), ctx)
    assert out.key == f"{RID}/mixdown.mp3" and out.tracks_mixed == 3
    assert out.duration_s == pytest.approx(5.0, abs=0.01)
    assert 0.4 < out.peak_gain < 0.6  # peak of the sum is ~2.1 (0.9 + 0.9 + 0.3)
    with ctx.storage.local_path(out.key) as p, av.open(str(p)) as c_:
        s = c_.streams.audio[0]
        assert (c_.format.name, s.codec_context.name, s.rate, s.channels) == (
            "mp3",
            "mp3float",
            32000,
            1,
        )
        assert 56000 <= (s.bit_rate or 64000) <= 72000
        audio, sr = read_audio(p)
    assert len(audio) / sr == pytest.approx(5.0, abs=0.06)
    assert np.abs(audio).max() <= 1.0
    # Where the tones overlap, the sum is turned down to just below full scale...
    loud = np.abs(audio[int(1.5 * sr) : int(2.5 * sr)]).max()
    assert 0.85 < loud <= 1.0
    # ...and the 16 kHz track alone fills the last second at its own level, not turned down.
    tail = np.abs(audio[int(4.2 * sr) : int(4.8 * sr)]).max()
    assert tail == pytest.approx(0.3, rel=0.1)


def test_mixdown_keeps_quiet_mix_at_unity_gain(
    tmp_path: Path, ctx: StageContext, make_track: Callable[..., Any]
) -> None:
    src = make_track(tmp_path / "q.wav", 1.0, amplitude=0.2)
    padded = pad_track(PadTrackIn(recording_id=RID, track=ingest(ctx, src)), ctx)
    out = mixdown_tracks(MixdownIn(recording_id=RID, tracks=[padded]), ctx)
    assert out.peak_gain == 1.0


def test_mixdown_keeps_its_exact_length_and_a_steady_level(
    tmp_path: Path,
    ctx: StageContext,
    make_track: Callable[..., Any],
    read_audio: Callable[..., Any],
) -> None:
    seconds = 40.0
    pads = [
        pad_track(
            PadTrackIn(
                recording_id=RID,
                track=ingest(ctx, make_track(tmp_path / f"{i}.flac", seconds, freq=f), i),
            ),
            ctx,
        )
        for i, f in enumerate((220.0, 330.0))
    ]
    out = mixdown_tracks(MixdownIn(recording_id=RID, tracks=pads), ctx)
    with ctx.storage.local_path(out.key) as p:
        audio, sr = read_audio(p)
    # Exact to a millisecond: the encoder's delay and padding are trimmed by its tag.
    assert len(audio) / sr == pytest.approx(seconds, abs=0.001)
    # Two steady tones: every MP3 frame's level is the same, none lost or repeated.
    frames = audio[: len(audio) // mp3.FRAME * mp3.FRAME].reshape(-1, mp3.FRAME)[2:-2]
    rms = np.sqrt(np.mean(frames**2, axis=1))
    assert float(rms.min()) > 0.9 * float(np.median(rms)) and float(rms.max()) < 1.1 * float(
        np.median(rms)
    )


def test_waveform_peaks(tmp_path: Path, ctx: StageContext, make_track: Callable[..., Any]) -> None:
    # Silence for 2 s, then a loud tone for 1 s, then a quiet one to the end.
    loud = make_track(tmp_path / "loud.wav", 1.0, amplitude=0.8)
    quiet = make_track(tmp_path / "quiet.wav", 1.0, amplitude=0.2)
    pads = [
        pad_track(PadTrackIn(recording_id=RID, track=ingest(ctx, loud, 0, 2.0)), ctx),
        pad_track(PadTrackIn(recording_id=RID, track=ingest(ctx, quiet, 1, 3.0)), ctx),
    ]
    mix = mixdown_tracks(MixdownIn(recording_id=RID, tracks=pads), ctx)
    peaks = generate_waveform(WaveformIn(recording_id=RID, mixdown=mix), ctx).peaks
    assert len(peaks) == 255
    assert all(0.0 <= p <= 1.0 for p in peaks) and max(peaks) == 1.0
    assert all(p == round(p, 2) for p in peaks)
    slice_s = 4.0 / 255
    assert max(peaks[: int(1.9 / slice_s)]) <= 0.01
    assert max(peaks[int(2.1 / slice_s) : int(2.9 / slice_s)]) >= 0.95
    assert peaks[int(3.5 / slice_s)] == pytest.approx(0.25, abs=0.04)
    # A mixdown stored without its slice maxima (an older worker's): read from the MP3.
    older = mix.model_copy(update={"peaks": []})
    again = generate_waveform(WaveformIn(recording_id=RID, mixdown=older), ctx).peaks
    assert len(again) == 255 and max(again) == 1.0
    assert max(abs(a - b) for a, b in zip(peaks, again, strict=True)) <= 0.05


def test_waveform_of_silence_is_all_zeros(
    tmp_path: Path, ctx: StageContext, make_track: Callable[..., Any]
) -> None:
    src = make_track(tmp_path / "silent.wav", 1.0, freq=0)
    pads = [pad_track(PadTrackIn(recording_id=RID, track=ingest(ctx, src)), ctx)]
    mix = mixdown_tracks(MixdownIn(recording_id=RID, tracks=pads), ctx)
    assert mix.peak_gain == 1.0
    peaks = generate_waveform(WaveformIn(recording_id=RID, mixdown=mix), ctx).peaks
    assert peaks == [0.0] * 255


_FAILING_MIX = """
import json, resource, signal, sys, threading
from pathlib import Path
from reflector_cli.core.config import load_settings
from reflector_cli.core.models import MixdownIn
from reflector_cli.stages.audio import mixdown_tracks
from reflector_cli.stages.context import StageContext
from reflector_cli.storage.local import LocalStorage

data = Path(sys.argv[1])
ctx = StageContext(storage=LocalStorage(data), settings=load_settings(data_dir=data))
inp = MixdownIn.model_validate_json(sys.argv[2])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
before = threading.active_count()
try:
    mixdown_tracks(inp, ctx)
except Exception as exc:
    held = exc  # a worker keeps the error for its report while it goes on
    print(json.dumps({"error": str(exc), "extra_threads": threading.active_count() - before}))
"""


def test_a_mixdown_failing_mid_write_stops_its_reader_threads(
    tmp_path: Path, ctx: StageContext, make_track: Callable[..., Any]
) -> None:
    pads = [
        pad_track(
            PadTrackIn(
                recording_id=RID,
                track=ingest(ctx, make_track(tmp_path / f"{i}.flac", 30.0, freq=f), i),
            ),
            ctx,
        )
        for i, f in enumerate((220.0, 330.0, 440.0))
    ]
    inp = MixdownIn(recording_id=RID, tracks=pads).model_dump_json()
    data = ctx.storage.path("x").parent  # the data dir
    # A real failed write: the MP3 (~240 kB) passes the process's file-size limit at 100 kB.
    run = subprocess.run(
        [sys.executable, "-c", _FAILING_MIX, str(data), inp], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-600:]
    report = json.loads(run.stdout)
    assert "mixdown_tracks" in report["error"] or "File too large" in report["error"]
    assert report["extra_threads"] == 0
    assert not ctx.storage.exists(f"{RID}/mixdown.mp3")  # nothing half-written was kept
