"""Audio stages: pad each track onto the meeting timeline, mix them down, draw a waveform.

Everything streams in small blocks (decode -> resample -> write), so memory stays bounded
whatever the recording length.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import av
import numpy as np
import soundfile as sf

from reflector_cli.core.audio_io import open_audio, write_errors
from reflector_cli.core.errors import UserError, one_line
from reflector_cli.core.models import (
    MixdownIn,
    MixdownOut,
    PadTrackIn,
    PadTrackOut,
    WaveformIn,
    WaveformOut,
)
from reflector_cli.stages import mp3
from reflector_cli.stages.context import StageContext
from reflector_cli.stages.levels import FRAME_S, EnvelopeBuilder, pcm16, to_bytes
from reflector_cli.stages.limiter import Limiter

SAMPLE_RATE = 48000
BLOCK = SAMPLE_RATE  # 1 s blocks: big enough for fast numpy, small enough to stay bounded
# Timestamp jumps below this are rounding jitter (WebM stores milliseconds), not muted audio.
GAP_TOLERANCE_S = 0.01
WAVEFORM_POINTS = 255
PROGRESS_EVERY_S = 60.0

_DTYPES = {"u8": np.uint8, "s16": np.int16, "s32": np.int32, "s64": np.int64}
_DTYPES |= {"flt": np.float32, "dbl": np.float64}


def _silence_like(frame: av.AudioFrame, samples: int) -> av.AudioFrame:
    """A silent frame in the decoder's own format, so the resampler sees one continuous stream."""
    name = frame.format.name
    dtype = _DTYPES[name.removesuffix("p")]
    channels = frame.layout.nb_channels
    shape = (channels, samples) if frame.format.is_planar else (1, samples * channels)
    fill = 128 if name.startswith("u8") else 0  # unsigned 8-bit silence is mid-scale
    out = av.AudioFrame.from_ndarray(
        np.full(shape, fill, dtype=dtype), format=name, layout=frame.layout.name
    )
    out.sample_rate = frame.sample_rate
    return out


@dataclass
class _GapStats:
    filled_s: float = 0.0
    bad_packets: int = 0


def _decode_filled(
    container: av.container.InputContainer, stream: av.AudioStream, stats: _GapStats
) -> Iterator[np.ndarray]:
    """Decoded audio as 48 kHz mono float32 chunks, with timestamp gaps filled by silence."""
    resampler = _Converter()
    start: float | None = None
    consumed_s = 0.0  # input audio (incl. inserted silence) fed to the resampler so far
    try:
        packets = container.demux(stream)
        for packet in packets:
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                stats.bad_packets += 1  # its stretch becomes a gap and is filled below
                continue
            for frame in frames:
                if frame.time is not None:
                    start = frame.time if start is None else start
                    gap = (frame.time - start) - consumed_s
                    if gap > GAP_TOLERANCE_S:
                        remaining = round(gap * frame.sample_rate)
                        consumed_s += remaining / frame.sample_rate
                        stats.filled_s += remaining / frame.sample_rate
                        while remaining > 0:  # bounded chunks: a muted hour is not one array
                            n = min(remaining, frame.sample_rate)
                            remaining -= n
                            yield from resampler.convert(frame, n)
                consumed_s += frame.samples / frame.sample_rate
                yield from resampler.convert(frame)
    except av.FFmpegError:
        if start is None:
            raise
        # A truncated tail (a recorder that crashed) keeps the audio decoded before it.
    yield from resampler.flush()


class _Converter:
    """Decoded frames to 48 kHz mono float32: numpy for frames already in that shape (Opus
    tracks from Daily.co are), FFmpeg's resampler for anything else.

    The shortcut saves ~0.4 s per 10 minutes of Opus (the resampler's per-frame cost on
    20 ms frames). Once a frame needs the resampler, every later one goes through it too,
    so its internal delay never reorders audio.
    """

    def __init__(self) -> None:
        self.resampler: av.AudioResampler | None = None

    def convert(self, frame: av.AudioFrame, silence: int = 0) -> Iterator[np.ndarray]:
        """`frame` converted; with `silence`, that many silent samples in its format instead."""
        if self.resampler is None and _is_target(frame):
            yield np.zeros(silence, np.float32) if silence else _mono(frame)
            return
        if self.resampler is None:
            self.resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        src = _silence_like(frame, silence) if silence else frame
        for f in self.resampler.resample(src):
            yield _mono(f)

    def flush(self) -> Iterator[np.ndarray]:
        if self.resampler is not None:
            for f in self.resampler.resample(None):
                yield _mono(f)


def _mono(frame: av.AudioFrame) -> np.ndarray:
    """A mono float32 frame's samples, read from its buffer: to_ndarray stacks the planes
    (~4 µs a frame), and a 15-minute Opus track has 45,000 frames of 20 ms."""
    return np.frombuffer(frame.planes[0], dtype=np.float32, count=frame.samples)


def _is_target(frame: av.AudioFrame) -> bool:
    return (
        frame.sample_rate == SAMPLE_RATE
        and frame.layout.nb_channels == 1
        and frame.format.name in ("flt", "fltp")
    )


class _BlockWriter:
    """Collects small chunks and writes them to a SoundFile in ~1 s blocks, and the level
    envelope of what it wrote (crosstalk suppression reads it instead of decoding the file)."""

    def __init__(self, out: sf.SoundFile) -> None:
        self.out = out
        self.levels = EnvelopeBuilder(round(SAMPLE_RATE * FRAME_S))
        self.pending: list[np.ndarray] = []
        self.pending_n = 0
        self.written = 0

    def add(self, chunk: np.ndarray) -> None:
        self.pending.append(chunk)
        self.pending_n += len(chunk)
        if self.pending_n >= BLOCK:
            self.flush()

    def silence(self, samples: int) -> None:
        self.flush()
        self.levels.silence(samples)
        while samples > 0:
            n = min(samples, BLOCK)
            self.out.write(np.zeros(n, dtype=np.int16))
            self.written += n
            samples -= n

    def flush(self) -> None:
        if not self.pending:
            return
        # Lossy decoders overshoot full scale slightly: clipped, never wrapped.
        pcm = pcm16(np.concatenate(self.pending))
        self.out.write(pcm)
        self.levels.add_pcm16(pcm)
        self.written += len(pcm)
        self.pending, self.pending_n = [], 0


def pad_track(inp: PadTrackIn, ctx: StageContext) -> PadTrackOut:
    """Decode, resample to 48 kHz mono, fill gaps, prepend `offset_s` of silence; write FLAC."""
    track = inp.track
    key = ctx.key(inp.recording_id, "padded", f"track-{track.index}.flac")
    offset = round(track.offset_s * SAMPLE_RATE)
    stats = _GapStats()
    with (
        ctx.storage.local_path(track.key) as src,
        open_audio(src, track.source_name) as (container, stream),
    ):
        total_s = (container.duration or 0) / 1_000_000
        with (
            ctx.storage.writer(key, suffix=".flac") as tmp,
            write_errors("pad_track", ctx.storage.describe(key), tmp),
            sf.SoundFile(
                tmp, "w", samplerate=SAMPLE_RATE, channels=1, format="FLAC", subtype="PCM_16"
            ) as out,
        ):
            writer = _BlockWriter(out)
            writer.silence(offset)
            next_report = PROGRESS_EVERY_S
            try:
                for chunk in _decode_filled(container, stream, stats):
                    writer.add(chunk)
                    done_s = (writer.written - offset) / SAMPLE_RATE
                    if done_s >= next_report:
                        ctx.progress(round(done_s, 1), round(max(total_s, done_s), 1))
                        next_report += PROGRESS_EVERY_S
            except av.FFmpegError as e:
                raise UserError(
                    f"{track.source_name}: corrupt audio data ({one_line(e.strerror)})"
                ) from None
            writer.flush()
            if writer.written == offset:
                raise UserError(f"{track.source_name}: no decodable audio frame")
            samples = writer.written
    levels_key = ctx.key(inp.recording_id, "padded", f"track-{track.index}.levels.f32")
    ctx.storage.write_bytes(levels_key, to_bytes(writer.levels.result()))
    done = round((samples - offset) / SAMPLE_RATE, 1)
    ctx.progress(done, done)
    return PadTrackOut(
        track=track.index,
        key=key,
        duration_s=samples / SAMPLE_RATE,
        sample_rate=SAMPLE_RATE,
        offset_s=track.offset_s,
        gaps_filled_s=round(stats.filled_s, 3),
        levels_key=levels_key,
    )


def _read_blocks(path: Path, label: str, block: int = BLOCK) -> Iterator[np.ndarray]:
    """A file as 48 kHz mono float32 blocks of exactly `block` samples (the last may be short)."""
    if path.suffix.lower() == ".flac":
        # Our own padded tracks: libsndfile reads them without the GIL (so tracks decode in
        # parallel threads) and needs no resampling when they are already 48 kHz mono.
        with sf.SoundFile(path) as f:
            if f.samplerate == SAMPLE_RATE and f.channels == 1:
                # libsndfile's FLAC reader is twice as fast with reads of a few seconds.
                while len(data := f.read(4 * block, dtype="float32")):
                    for i in range(0, len(data), block):
                        yield data[i : i + block]
                return
    with open_audio(path, label) as (container, stream):
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        fifo = av.AudioFifo()

        def push(frames: list[av.AudioFrame]) -> None:
            for f in frames:
                f.pts = None  # the fifo checks pts continuity; positions come from counts
                fifo.write(f)

        for frame in container.decode(stream):
            push(resampler.resample(frame))
            while (out := fifo.read(block)) is not None:
                yield out.to_ndarray()[0]
        push(resampler.resample(None))
        while fifo.samples:
            out = fifo.read(min(block, fifo.samples))
            yield out.to_ndarray()[0]


_END = object()


class _Prefetch:
    """Run a block generator in its own thread, a few blocks ahead, with bounded memory.

    PyAV decoding releases the GIL, so tracks decode on the second core while the main
    thread mixes and encodes.
    """

    def __init__(self, blocks: Iterator[np.ndarray], depth: int = 4) -> None:
        self.blocks = blocks
        self.queue: queue.Queue[object] = queue.Queue(depth)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _put(self, item: object) -> bool:
        while not self.stopped.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            with contextlib.closing(self.blocks):
                for block in self.blocks:
                    if not self._put(block):
                        return
            self._put(_END)
        except BaseException as e:  # handed to the consumer, which re-raises it
            self._put(e)

    def next(self) -> np.ndarray | None:
        item = self.queue.get()
        if item is _END:
            self.queue.put(_END)  # stay exhausted for later calls
            return None
        if isinstance(item, BaseException):
            raise item
        return item  # type: ignore[return-value]

    def close(self) -> None:
        self.stopped.set()
        self.thread.join()


def _mix_blocks(paths: list[tuple[Path, str]]) -> Iterator[np.ndarray]:
    """Sum of all tracks, block by block in lock-step; as long as the longest track."""
    with contextlib.ExitStack() as stack:
        readers = []
        for p, label in paths:
            reader = _Prefetch(_read_blocks(p, label))
            stack.callback(reader.close)
            readers.append(reader)
        while True:
            parts = [b for b in (r.next() for r in readers) if b is not None]
            if not parts:
                return
            mix = np.zeros(max(len(b) for b in parts), dtype=np.float32)
            for b in parts:
                mix[: len(b)] += b
            yield mix


def mixdown_tracks(inp: MixdownIn, ctx: StageContext) -> MixdownOut:
    """Mix the padded tracks into one mono 64 kb/s MP3, limited below full scale, in one pass
    (decode, sum, limit, encode); the waveform's peaks are taken on the way."""
    if not inp.tracks:
        raise UserError(f"recording {inp.recording_id}: no tracks to mix")
    key = ctx.key(inp.recording_id, "mixdown.mp3")
    total = max(round(t.duration_s * SAMPLE_RATE) for t in inp.tracks)
    limiter = Limiter(SAMPLE_RATE)
    peaks = _SlicePeaks(total, WAVEFORM_POINTS)

    def progress(done_s: float) -> None:
        ctx.progress(done_s, round(total / SAMPLE_RATE, 1))

    with contextlib.ExitStack() as stack:
        paths = [(stack.enter_context(ctx.storage.local_path(t.key)), t.key) for t in inp.tracks]
        # Closed on a failure too, so its reader threads stop and let go of the files.
        mixed = stack.enter_context(contextlib.closing(_mix_blocks(paths)))
        with (
            ctx.storage.writer(key, suffix=".mp3") as tmp,
            write_errors("mixdown_tracks", ctx.storage.describe(key), tmp),
            open(tmp, "wb") as out,
        ):
            blocks = peaks.through(chain(limiter.feed(mixed), limiter.finish()))
            samples = mp3.encode(out, blocks, SAMPLE_RATE, progress, PROGRESS_EVERY_S)
    return MixdownOut(
        key=key,
        duration_s=samples / SAMPLE_RATE,
        tracks_mixed=len(inp.tracks),
        peak_gain=round(limiter.lowest, 6),
        peaks=peaks.result(),
    )


class _SlicePeaks:
    """Max |sample| in each of `points` equal slices of `total` samples, of blocks passing
    through; samples past `total` fall into the last slice."""

    def __init__(self, total: int, points: int) -> None:
        self.bounds = np.array([k * max(1, total) // points for k in range(points + 1)])
        self.peaks = np.zeros(points, dtype=np.float64)
        self.pos = 0

    def through(self, blocks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        for block in blocks:
            self._add(block)
            yield block

    def _add(self, block: np.ndarray) -> None:
        start, end = self.pos, self.pos + len(block)
        last = len(self.peaks) - 1
        first = min(int(np.searchsorted(self.bounds, start, side="right")) - 1, last)
        for k in range(first, last + 1):
            lo = max(int(self.bounds[k]), start)
            hi = end if k == last else min(int(self.bounds[k + 1]), end)
            if lo >= end:
                break
            if hi > lo:
                part = block[lo - start : hi - start]
                self.peaks[k] = max(self.peaks[k], float(np.abs(part).max()))
        self.pos = end

    def result(self) -> list[float]:
        return [float(p) for p in self.peaks]


def generate_waveform(inp: WaveformIn, ctx: StageContext) -> WaveformOut:
    """255 peaks of the mixdown (max |sample| per equal slice / global max, 2 decimals), from
    the slice maxima the mixdown took of the samples it encoded."""
    peaks = inp.mixdown.peaks
    if not peaks:  # a mixdown made before it took them (a worker of an older version)
        taken = _SlicePeaks(round(inp.mixdown.duration_s * SAMPLE_RATE), WAVEFORM_POINTS)
        with ctx.storage.local_path(inp.mixdown.key) as path:
            for _ in taken.through(_read_blocks(path, inp.mixdown.key)):
                pass
        peaks = taken.result()
    top = max(peaks, default=0.0)
    if top <= 0:
        return WaveformOut(peaks=[0.0] * WAVEFORM_POINTS)
    return WaveformOut(peaks=[round(p / top, 2) for p in peaks])
