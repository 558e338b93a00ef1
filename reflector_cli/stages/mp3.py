"""The mixdown's MP3 encode: LAME through `lameenc`, with a LAME Info tag written in front so
decoders trim the encoder's delay and padding (the file decodes to exactly the samples mixed).

Why lameenc rather than PyAV's libmp3lame: the LAME in PyAV's wheels encodes 3.7 times slower
(a 67-s mono 32 kHz mix at quality 7: 0.47 CPU-s against 0.13), which made the mixdown the
second-largest stage on a short meeting and needed two encoders on two cores for long ones.
lameenc writes no tag itself, so we write the one a LAME or FFmpeg muxer would.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from typing import BinaryIO

import av
import lameenc
import numpy as np

MP3_BITRATE_KBPS = 64
# LAME quality 7 is transparent enough for speech at 64 kb/s; each step down costs ~1.6x.
MP3_QUALITY = 7
MP3_RATE = 32000
FRAME = 1152  # samples per MPEG-1 Layer III frame
# At this rate and bitrate every frame has the same size (no padding slot): frames are counted
# from the byte count.
FRAME_BYTES = 144 * MP3_BITRATE_KBPS * 1000 // MP3_RATE
assert 144 * MP3_BITRATE_KBPS * 1000 % MP3_RATE == 0, "frame size must not vary"
MIN_SAMPLES = 2 * FRAME
# LAME 3.100's delay before the first input sample (what lame_get_encoder_delay gives); the
# decoder adds its own 529, which readers of the tag know.
ENCODER_DELAY = 576
# Where the Info tag starts in an MPEG-1 mono frame: the header, then 17 bytes of side info.
_TAG_AT = 4 + 17
_VERSION = b"LAME3.100"


def encode(
    out: BinaryIO,
    blocks: Iterable[np.ndarray],
    in_rate: int,
    progress: Callable[[float], None],
    progress_every_s: float,
) -> int:
    """Encode float mono `blocks` at `in_rate` into `out` (a seekable binary file, written from
    its current position) as one mono MP3; the number of input samples encoded."""
    out.write(id3_header())
    start = out.tell()
    out.write(bytes(FRAME_BYTES))  # the tag frame's place, written once the counts are known
    lame = lameenc.Encoder()
    lame.set_bit_rate(MP3_BITRATE_KBPS)
    lame.set_in_sample_rate(MP3_RATE)
    lame.set_channels(1)
    lame.set_quality(MP3_QUALITY)
    lame.encode(b"")  # started even if no sample comes, so flush() has an encoder to end
    resampler = av.AudioResampler(format="s16", layout="mono", rate=MP3_RATE)
    taken = pcm = 0
    next_report = progress_every_s
    header = b""

    def write(data: bytes) -> None:
        nonlocal header
        header = header or data[:4]
        out.write(data)

    def encode_pcm(frames: list[av.AudioFrame]) -> None:
        """The resampler's output to LAME, counted (the tag's padding is worked out from it)."""
        nonlocal pcm
        for f in frames:
            pcm += f.samples
            write(lame.encode(bytes(f.planes[0])[: 2 * f.samples]))

    for block in blocks:
        frame = av.AudioFrame.from_ndarray(block[None, :], format="flt", layout="mono")
        frame.sample_rate = in_rate
        frame.pts = taken
        taken += len(block)
        encode_pcm(resampler.resample(frame))
        if taken / in_rate >= next_report:
            progress(round(taken / in_rate, 1))
            next_report += progress_every_s
    encode_pcm(resampler.resample(None))
    # Readers look for two audio frames in a row before they trust a file: a mix shorter than
    # that gets silence after it, which the tag's padding trims again.
    write(lame.encode(bytes(2 * max(0, MIN_SAMPLES - pcm))))
    write(lame.flush())
    end = out.tell()
    frames = (end - start - FRAME_BYTES) // FRAME_BYTES
    out.seek(start)
    out.write(info_frame(header, frames, end - start, pcm))
    out.seek(end)
    return taken


def id3_header() -> bytes:
    """An ID3v2.4 tag naming the encoder, as FFmpeg's MP3 muxer writes: readers that probe
    the format (FFmpeg among them) need it to recognise a file of only a frame or two."""
    text = b"\x03" + _VERSION  # UTF-8
    frame = b"TSSE" + _syncsafe(len(text)) + b"\x00\x00" + text
    return b"ID3\x04\x00\x00" + _syncsafe(len(frame)) + frame


def _syncsafe(n: int) -> bytes:
    return bytes((n >> s) & 0x7F for s in (21, 14, 7, 0))


def info_frame(header: bytes, frames: int, size: int, samples: int) -> bytes:
    """A silent frame carrying the Xing "Info" tag (CBR) and LAME's extension: frame and byte
    counts, a seek table, and the delay and padding to trim around `samples` (at MP3_RATE)."""
    padding = frames * FRAME - ENCODER_DELAY - samples
    if len(header) < 4 or not 0 <= padding < 4096:
        raise ValueError(f"mp3: cannot tag {frames} frames for {samples} samples")
    tag = bytearray(FRAME_BYTES)
    tag[:4] = header
    toc = bytes(i * 256 // 100 for i in range(100))
    struct.pack_into(">4sIII100sI", tag, _TAG_AT, b"Info", 0x0F, frames, size, toc, 0)
    lame = _TAG_AT + 120
    tag[lame : lame + 9] = _VERSION
    tag[lame + 9] = 0x01  # tag revision 0, CBR
    tag[lame + 20] = min(MP3_BITRATE_KBPS, 255)
    tag[lame + 21 : lame + 24] = ((ENCODER_DELAY << 12) | padding).to_bytes(3, "big")
    struct.pack_into(">I", tag, lame + 28, size)  # from this frame to the last audio byte
    # lame + 32: the music CRC, left 0 (a CRC of the whole file would need a pass in Python).
    struct.pack_into(">H", tag, lame + 34, crc16(bytes(tag[: lame + 34])))
    return bytes(tag)


def _crc16_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0xA001 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC16 = _crc16_table()


def crc16(data: bytes) -> int:
    """CRC-16/ARC, the checksum the LAME tag ends with."""
    crc = 0
    for b in data:
        crc = (crc >> 8) ^ _CRC16[(crc ^ b) & 0xFF]
    return crc
