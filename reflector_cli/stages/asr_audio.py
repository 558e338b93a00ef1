"""Audio for the ASR in bounded memory: 16 kHz windows of a padded track, VAD speech regions,
and groups of regions whose speech is concatenated and decoded together.

faster-whisper's own VAD path decodes a whole track into one array and concatenates all of its
speech; we read the FLAC in windows instead and bound each group's speech (GROUP_SPEECH_S).
Concatenated speech gives whisper context (decoding regions one by one costs accuracy), and a
region that comes out empty is decoded again on its own (asr.py), so one bad window decision
cannot drop a sparse speaker's hour.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import soundfile as sf

RATE = 16000  # whisper's input rate
READ_S = 5.0  # seconds read from the track per step (the resampler's buffers grow with it)
# VAD runs on windows of this length (Silero restarts at each; regions are stitched back).
VAD_WINDOW_S = 300.0
# Regions closer than this are one region (faster-whisper's default min_silence_duration_ms).
MERGE_GAP_S = 2.0
# Speech decoded in one concatenated group (5 min at 16 kHz float32 = 19 MB).
GROUP_SPEECH_S = 300.0
# A single region longer than this is split by the VAD itself (bounds a span's memory).
MAX_REGION_S = 600.0


@dataclass(frozen=True)
class Span:
    start: float
    end: float


def _resampled(
    path: Path, start_s: float = 0.0, length_s: float | None = None
) -> Iterator[np.ndarray]:
    """16 kHz mono float32 blocks of `path` from `start_s`, for `length_s` (None: to the end)."""
    with sf.SoundFile(str(path)) as f:
        rate = f.samplerate
        f.seek(min(f.frames, round(start_s * rate)))
        left = None if length_s is None else round(length_s * rate)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
        while left is None or left > 0:
            n = round(READ_S * rate) if left is None else min(left, round(READ_S * rate))
            # Our padded tracks are mono: read as they are (averaging one channel copied
            # every block, ~0.1 CPU-s per 15 minutes read).
            data = f.read(n, dtype="float32", always_2d=f.channels > 1)
            if not len(data):
                break
            if left is not None:
                left -= len(data)
            yield from _push(resampler, data if data.ndim == 1 else data.mean(axis=1), rate)
        for out in resampler.resample(None):
            yield out.to_ndarray()[0]


def _push(resampler: av.AudioResampler, mono: np.ndarray, rate: int) -> Iterator[np.ndarray]:
    if rate == RATE:
        yield mono.astype(np.float32)
        return
    data = np.ascontiguousarray(mono, dtype=np.float32)[None, :]
    frame = av.AudioFrame.from_ndarray(data, format="flt", layout="mono")
    frame.sample_rate = rate
    for out in resampler.resample(frame):
        yield out.to_ndarray()[0]


def read_span(path: Path, start_s: float, end_s: float) -> np.ndarray:
    """The 16 kHz samples of [start_s, end_s) (one span: at most MAX_REGION_S + a window)."""
    blocks = list(_resampled(path, start_s, end_s - start_s))
    audio = np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.float32)
    return audio[: round((end_s - start_s) * RATE)]


def _windows(
    path: Path, start_s: float = 0.0, length_s: float | None = None
) -> Iterator[tuple[float, np.ndarray]]:
    """(start second, samples) of consecutive VAD_WINDOW_S windows of the track from `start_s`
    for `length_s` (None: to the end).

    Every window is the same buffer, refilled: a caller must be done with one before the next.
    """
    size = round(VAD_WINDOW_S * RATE)
    window = np.empty(size, dtype=np.float32)
    have = 0
    pos = round(start_s * RATE)
    for block in _resampled(path, start_s, length_s):
        while block.size:
            n = min(size - have, block.size)
            window[have : have + n] = block[:n]
            have, block = have + n, block[n:]
            if have == size:
                yield pos / RATE, window
                pos, have = pos + size, 0
    if have:
        yield pos / RATE, window[:have]


def speech_regions(
    path: Path,
    max_region_s: float = MAX_REGION_S,
    spans: list[tuple[float, float]] | None = None,
) -> list[tuple[float, float]]:
    """VAD speech regions (seconds, none longer than `max_region_s`) of the track, looked for
    only inside `spans` (None: the whole track); the VAD restarts at each span."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    opts = VadOptions(max_speech_duration_s=max_region_s)
    regions: list[tuple[float, float]] = []
    looked = [(0.0, None)] if spans is None else [(a, b - a) for a, b in spans]
    windows = (w for a, length in looked for w in _windows(path, a, length))
    for start, audio in windows:
        for r in get_speech_timestamps(audio, opts):
            a, b = start + r["start"] / RATE, start + r["end"] / RATE
            if regions and a - regions[-1][1] < MERGE_GAP_S and b - regions[-1][0] <= max_region_s:
                regions[-1] = (regions[-1][0], b)
            else:
                regions.append((a, b))
    return regions


def groups(regions: list[tuple[float, float]]) -> list[list[Span]]:
    """Consecutive regions, at most GROUP_SPEECH_S of speech per group."""
    out: list[list[Span]] = []
    speech = 0.0
    for a, b in regions:
        if not out or speech + (b - a) > GROUP_SPEECH_S:
            out.append([])
            speech = 0.0
        out[-1].append(Span(a, b))
        speech += b - a
    return out


def concat(path: Path, group: list[Span]) -> tuple[np.ndarray, list[float]]:
    """The group's speech end to end, and where each region starts in it (seconds)."""
    parts = [read_span(path, s.start, s.end) for s in group]
    starts = list(np.cumsum([0] + [p.size for p in parts[:-1]]) / RATE)
    return np.concatenate(parts), [float(x) for x in starts]


def rms_dbfs(audio: np.ndarray) -> float:
    if audio.size == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    return 20 * np.log10(max(rms, 1e-6))
