"""The mixdown's MP3 encode; on two cores for long recordings, where both halves are encoded at
once and joined at a frame boundary with the bit reservoir carried across the join.

Why the join is clean: the second encoder starts WARMUP_FRAMES early on the same frame grid, so
its frames cover the same samples as the first one's, and by the join LAME's state has
(on speech, measured) converged to the first encoder's: the file decodes to the one-pass samples.
Where it has not (loud noise), the frames near the join are another valid encoding of the same
audio. A frame's main data may start in earlier frames (the bit reservoir): the join frame's
start is copied into the first half's free tail, which exists when the join frame reaches back no
further than the first encoder's own next frame would have.
"""

from __future__ import annotations

import os
import struct
import tempfile
import threading
from array import array
from collections import deque
from collections.abc import Callable, Iterator
from fractions import Fraction
from itertools import chain

import av
import numpy as np

MP3_BITRATE = 64000
# LAME quality 7 halves encoding time (encoding dominates the mixdown) and is transparent
# enough for speech at 64 kb/s.
MP3_QUALITY = "7"
MP3_RATE = 32000
FRAME = 1152  # samples per MPEG-1 Layer III frame
# The second half's encoder starts this many frames before the middle (~0.6 s): on a
# 15-minute meeting its output decoded identically to the one-pass encode from 2 frames on.
WARMUP_FRAMES = 16
# The first half's encoder runs this many frames past the middle, so a join frame whose
# reservoir fits is found (on speech, the first candidate fits).
SEARCH_FRAMES = 64
# Shorter recordings are encoded in one pass: the mixdown then runs next to transcriptions,
# and the halves would only contend for the same cores.
SPLIT_MIN_S = 120.0
_HEADER = struct.Struct(">I")

# Blocks of input (float32 mono at the input rate) for the input sample range [start, stop).
Reader = Callable[[int, int | None], Iterator[np.ndarray]]


def split_worthwhile(samples: int, in_rate: int) -> bool:
    """Two halves pay when the recording is long and this process may use two cores."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return samples / in_rate >= SPLIT_MIN_S and (cores or 1) >= 2


def configure(codec: av.CodecContext) -> None:
    codec.sample_rate = MP3_RATE
    codec.layout = "mono"
    codec.bit_rate = MP3_BITRATE
    codec.options = {"compression_level": MP3_QUALITY}


class _Encoder:
    """One LAME encoder fed 48 kHz float blocks; packets come out in frame order."""

    def __init__(self, codec: av.CodecContext, in_rate: int, tick: Callable[[int], None]) -> None:
        self.codec = codec
        self.in_rate = in_rate
        self.tick = tick
        self.resampler = av.AudioResampler(format="flt", layout="mono", rate=MP3_RATE)
        self.pts = 0

    def feed(self, blocks: Iterator[np.ndarray]) -> Iterator[av.Packet]:
        for data in blocks:
            frame = av.AudioFrame.from_ndarray(data[None, :], format="flt", layout="mono")
            frame.sample_rate = self.in_rate
            frame.pts = self.pts
            self.pts += len(data)
            for f in self.resampler.resample(frame):
                yield from self.codec.encode(f)
            self.tick(len(data))

    def finish(self) -> Iterator[av.Packet]:
        for f in self.resampler.resample(None):
            yield from self.codec.encode(f)
        yield from self.codec.encode(None)


def encode(
    out: av.container.OutputContainer,
    read: Reader,
    samples: int,
    in_rate: int,
    progress: Callable[[float], None],
    progress_every_s: float,
    split: bool | None = None,
    search_frames: int = SEARCH_FRAMES,
    warmup_frames: int = WARMUP_FRAMES,
) -> bool:
    """Encode `samples` input samples into `out` as one mono MP3 stream; True when the two
    halves were joined (progress: seconds encoded, every `progress_every_s` of audio; split: None
    decides by length and cores; search_frames: how far past
    the middle a join frame is looked for; warmup_frames: how early the second half starts)."""
    stream = out.add_stream("libmp3lame", rate=MP3_RATE)
    configure(stream.codec_context)
    tick = _Ticker(in_rate, samples, progress, progress_every_s)
    if split is None:
        split = split_worthwhile(samples, in_rate)
    first = _Encoder(stream.codec_context, in_rate, tick)
    if split and in_rate * FRAME % MP3_RATE == 0:
        mid = samples * MP3_RATE // in_rate // FRAME // 2
        if mid > warmup_frames + 2 and warmup_frames >= 2:
            return _two_halves(out, stream, first, read, mid - warmup_frames, mid, search_frames)
    for packet in first.feed(read(0, None)):
        _mux(out, stream, packet)
    for packet in first.finish():
        _mux(out, stream, packet)
    return False


def _mux(out: av.container.OutputContainer, stream: av.stream.Stream, packet: av.Packet) -> None:
    packet.stream = stream
    out.mux(packet)


class _Ticker:
    """Progress of both halves together, once per `every_s` of audio encoded, reported from the
    calling thread only (a report may be a network call; it must not stall the second half)."""

    def __init__(
        self, in_rate: int, samples: int, progress: Callable[[float], None], every_s: float
    ) -> None:
        self.in_rate = in_rate
        self.samples = samples
        self.progress = progress
        self.done = 0
        self.every_s = every_s
        self.next_s = every_s
        self.lock = threading.Lock()
        self.owner = threading.get_ident()

    def __call__(self, n: int) -> None:
        with self.lock:
            # Samples both halves encode (the overlap, a fallback's repeat) count once.
            self.done = min(self.done + n, self.samples)
        if threading.get_ident() != self.owner or self.done / self.in_rate < self.next_s:
            return
        while self.done / self.in_rate >= self.next_s:
            self.next_s += self.every_s
        self.progress(round(self.done / self.in_rate, 1))


class _SecondHalf:
    """The second encoder, in its own thread: its first frames kept for the join, the rest
    spooled to disk (64 kb/s: ~14 MB for the second half of an hour)."""

    # The last packets stay whole: the final one carries the encoder's end padding, which the
    # muxer writes into the LAME tag so decoders trim it.
    TAIL = 8

    def __init__(self, read: Reader, start: int, like: _Encoder, keep: int) -> None:
        codec = av.CodecContext.create("libmp3lame", "w")
        configure(codec)
        codec.format = like.codec.format
        self.encoder = _Encoder(codec, like.in_rate, like.tick)
        self.blocks = read(start, None)
        self.head: list[av.Packet] = []  # the first `keep` packets: the join is among them
        self.keep = keep
        # Closed by close(), after the thread that writes it has ended.
        self.spool = tempfile.TemporaryFile(prefix="reflector-mp3-")  # noqa: SIM115
        # Size, pts and duration of each spooled packet (14 bytes each: 0.7 MB for 3 hours).
        self.sizes, self.pts, self.durations = array("H"), array("q"), array("I")
        self.tail: deque[av.Packet] = deque()
        self.error: BaseException | None = None
        self.stop = threading.Event()  # the first half failed: end early
        self.thread = threading.Thread(target=self._run, name="mp3-second-half", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for packet in chain(self.encoder.feed(self.blocks), self.encoder.finish()):
                if self.stop.is_set():
                    return
                if len(self.head) < self.keep:
                    self.head.append(packet)
                    continue
                self.tail.append(packet)
                if len(self.tail) > self.TAIL:
                    old = self.tail.popleft()
                    self.spool.write(bytes(old))
                    self.sizes.append(old.size)
                    self.pts.append(old.pts or 0)
                    self.durations.append(old.duration or FRAME)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            self.error = exc

    def join(self) -> None:
        self.thread.join()
        if self.error is not None:
            raise self.error

    def spooled(self) -> Iterator[tuple[bytes, int, int]]:
        self.spool.seek(0)
        for size, pts, duration in zip(self.sizes, self.pts, self.durations, strict=True):
            yield self.spool.read(size), pts, duration

    def close(self) -> None:
        self.spool.close()


def _two_halves(
    out: av.container.OutputContainer,
    stream: av.stream.Stream,
    first: _Encoder,
    read: Reader,
    start2: int,
    mid: int,
    search_frames: int,
) -> bool:
    in_frame = FRAME * first.in_rate // MP3_RATE
    second = _SecondHalf(read, start2 * in_frame, first, mid - start2 + search_frames)
    try:
        # The first half: frames before the join's reach are final and muxed at once.
        held: list[av.Packet] = []
        hold_from = mid - 4  # the reservoir (≤ 511 bytes) reaches back under 2 frames
        stop = (mid + search_frames) * in_frame
        for i, packet in enumerate(first.feed(read(0, stop))):
            if second.error is not None:
                break  # raised by join() below
            if i < hold_from:
                _mux(out, stream, packet)
            else:
                held.append(packet)
        second.join()
        k = _join(held, hold_from, second.head, start2)
        if k is None:  # no frame to join at: the first encoder goes on alone
            for packet in chain(held, first.feed(read(stop, None)), first.finish()):
                _mux(out, stream, packet)
            return False
        for _ in first.finish():  # drained so FFmpeg does not warn of frames left; unused
            pass
        base = start2 * FRAME
        for packet in held[: k - hold_from]:
            _mux(out, stream, packet)
        for packet in second.head[k - start2 :]:
            _mux(out, stream, _shifted(packet, base))
        for data, pts, duration in second.spooled():
            _mux(out, stream, _packet(data, pts + base, duration))
        for packet in second.tail:
            _mux(out, stream, _shifted(packet, base))
        return True
    finally:
        second.stop.set()
        second.thread.join()
        second.close()


def _packet(data: bytes, pts: int, duration: int) -> av.Packet:
    packet = av.Packet(data)
    packet.pts = packet.dts = pts
    packet.duration = duration
    packet.time_base = Fraction(1, MP3_RATE)
    return packet


def _shifted(packet: av.Packet, base: int) -> av.Packet:
    """A second-half packet at its place on the whole stream's timeline (side data kept)."""
    packet.pts = packet.dts = (packet.pts or 0) + base
    return packet


def _mpeg1_mono(frame: bytes) -> bool:
    """An MPEG-1 Layer III mono frame: the only layout _side_info reads (MPEG-2 below 32 kHz
    and stereo have other side information)."""
    if len(frame) < 8:
        return False
    (header,) = _HEADER.unpack_from(frame)
    sync, version, layer = header >> 21, (header >> 19) & 3, (header >> 17) & 3
    mode = (header >> 6) & 3
    return sync == 0x7FF and version == 3 and layer == 1 and mode == 3


def _side_info(frame: bytes) -> tuple[int, int]:
    """(main_data_begin, where the frame's main data area starts) of an MPEG-1 mono frame."""
    (header,) = _HEADER.unpack_from(frame)
    at = 4 if header & 0x10000 else 6  # protection bit clear: a 16-bit CRC follows the header
    return (frame[at] << 1) | (frame[at + 1] >> 7), at + 17


def _join(held: list[av.Packet], hold_from: int, head: list[av.Packet], start2: int) -> int | None:
    """The frame to join at (first half before it, second half from it), with the join frame's
    reservoir bytes copied into the held first-half frames' free tail; None when no frame in
    reach can be joined at."""
    first, second = [bytes(p) for p in held], [bytes(p) for p in head]
    if not all(_mpeg1_mono(f) for f in (*first, *second)):
        return None
    for k in range(hold_from + 4, hold_from + len(held)):
        g = k - start2
        if g >= len(second):
            break
        need, _ = _side_info(second[g])
        free, _ = _side_info(first[k - hold_from])
        if need <= free:
            cut = k - hold_from
            kept = [bytearray(d) for d in first[:cut]]
            _copy_reservoir(kept, second[:g], need)
            held[:cut] = [_like(d, p) for d, p in zip(kept, held[:cut], strict=True)]
            return k
    return None


def _like(data: bytearray, packet: av.Packet) -> av.Packet:
    return _packet(bytes(data), packet.pts or 0, packet.duration or FRAME)


def _copy_reservoir(into: list[bytearray], source: list[bytes], count: int) -> None:
    """The last `count` main-data bytes of `source` over the last `count` of `into`."""
    tail = bytearray()
    for frame in reversed(source):
        if len(tail) >= count:
            break
        _, at = _side_info(frame)
        tail[:0] = frame[at:]
    tail = tail[len(tail) - count :] if count else bytearray()
    for frame in reversed(into):
        if not tail:
            return
        _, at = _side_info(bytes(frame[:8]))
        take = min(len(frame) - at, len(tail))
        frame[len(frame) - take :] = tail[len(tail) - take :]
        del tail[len(tail) - take :]
