"""Synthesise the sample multitrack meeting (espeak-ng voices, PyAV encoders) and its truth file.

Also writes Daily-style file names (`--daily-names`), long benchmark meetings (`--minutes`,
`--speakers`), and measures per-speaker WER of a generated meeting with faster-whisper
(`--measure`).
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
import wave
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

ESPEAK = "espeak-ng"
# espeak-ng renders at 22050 Hz; Opus only takes 48 kHz-family rates, so speech is resampled.
ESPEAK_RATE = 22050
TRACK_RATE = 48000
# -60 dBFS RMS: inaudible, but not digital zero (real microphones never are).
NOISE_RMS = 10 ** (-60 / 20)
# The noise is a seeded loop tiled along the track: cheap for hour-long tracks, still deterministic.
NOISE_LOOP_S = 7.3
CHUNK = 48000  # samples rendered per step; whole tracks are never held in memory
RECORDING_START_MS = 1_732_870_800_000  # fixed, so the output never depends on the clock
ROOM = "release-planning"
UUID_NAMESPACE = uuid.UUID("7f0c6a52-3f7e-4a59-9c43-5e2b8f0d2a11")
# Silence between utterances (cycled) and after the last one, in seconds.
GAPS_S = (0.45, 0.7, 0.55, 0.8)
TAIL_S = 1.5


@dataclass(frozen=True)
class Person:
    name: str
    voice: str  # espeak-ng voice+variant
    speed: int  # words per minute
    pitch: int  # espeak pitch 0-99
    join_s: float  # meeting time this participant's track starts
    file: str  # output file name (container chosen by extension)


PEOPLE: tuple[Person, ...] = (
    Person("Alice", "en-gb+f3", 175, 50, 0.0, "alice.webm"),
    Person("Bob", "en-us+m3", 175, 40, 6.0, "bob.mp3"),
    Person("Carol", "en-us+f2", 170, 50, 15.0, "carol.ogg"),
)
# Extra voices for benchmark meetings with more than three speakers.
EXTRA_VOICES: tuple[tuple[str, int, int], ...] = (
    ("en-gb+m1", 170, 45),
    ("en-us+m1", 170, 35),
    ("en-gb+f2", 170, 60),
    ("en-us+m2", 170, 40),
    ("en-gb+f1", 170, 55),
)

# (speaker index, text): a team planning a release.
SCRIPT: tuple[tuple[int, str], ...] = (
    (0, "Good morning. Let's start when Bob joins."),
    (1, "Hi Alice, sorry I am late."),
    (0, "Today we plan the release of the new billing dashboard."),
    (1, "The biggest risk is the database migration."),
    (0, "How long will the migration take?"),
    (1, "About two hours. I will run it on Saturday night."),
    (2, "Hello everyone. I just talked to our biggest customers."),
    (0, "Welcome Carol. What did they say?"),
    (2, "They love the new reports, but exporting invoices is too slow."),
    (1, "The migration fixes that, because it adds an index."),
    (0, "So what launch date can we promise?"),
    (1, "We can launch on March 15th."),
    (2, "Marketing needs two weeks to prepare the announcement."),
    (0, "Next is the budget. We have 20,000 dollars left."),
    (1, "We should buy a second database server for backups."),
    (2, "And run a customer survey after the launch."),
    (0, "Fine. Bob orders the server, Carol writes the survey."),
    (1, "I will also write a rollback plan for the migration."),
    (2, "I will share the survey questions on Friday."),
    (0, "Great. Thank you both, see you next week."),
)


@dataclass(frozen=True)
class Speaker:
    index: int
    name: str
    voice: str
    speed: int
    pitch: int
    join_s: float
    file: str
    participant_id: str


@dataclass(frozen=True)
class Utterance:
    speaker: int
    text: str
    start: int  # meeting sample (TRACK_RATE) where the speech starts
    clip: np.ndarray  # float32 mono at TRACK_RATE, edges trimmed


def _participant_id(name: str) -> str:
    return str(uuid.uuid5(UUID_NAMESPACE, name))


def synthesize(text: str, voice: str, speed: int, pitch: int) -> np.ndarray:
    """espeak-ng speech as float32 mono at TRACK_RATE with its leading/trailing silence trimmed."""
    wav = subprocess.run(
        [ESPEAK, "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", text],
        check=True,
        capture_output=True,
    ).stdout
    with wave.open(io.BytesIO(wav)) as w:
        if w.getframerate() != ESPEAK_RATE or w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise RuntimeError(f"unexpected espeak-ng output format for voice {voice}")
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    # Trim to the speech itself so truth start/end mark voice, not espeak's padding.
    loud = np.flatnonzero(np.abs(pcm) > 200)
    if loud.size:
        pcm = pcm[loud[0] : loud[-1] + 1]
    return _resample(pcm)


def _resample(pcm: np.ndarray) -> np.ndarray:
    resampler = av.AudioResampler(format="flt", layout="mono", rate=TRACK_RATE)
    frame = av.AudioFrame.from_ndarray(pcm[None, :], format="s16", layout="mono")
    frame.sample_rate = ESPEAK_RATE
    out = [f.to_ndarray()[0] for f in resampler.resample(frame)]
    out += [f.to_ndarray()[0] for f in resampler.resample(None)]
    return np.concatenate(out).astype(np.float32) * np.float32(0.8)


def default_speakers() -> list[Speaker]:
    return [
        Speaker(i, p.name, p.voice, p.speed, p.pitch, p.join_s, p.file, _participant_id(p.name))
        for i, p in enumerate(PEOPLE)
    ]


def bench_speakers(count: int, minutes: float) -> list[Speaker]:
    """`count` speakers: the three fixture voices first, then extra voices, cycled."""
    voices = [(p.voice, p.speed, p.pitch) for p in PEOPLE] + list(EXTRA_VOICES)
    out = []
    for i in range(count):
        voice, speed, pitch = voices[i % len(voices)]
        name = PEOPLE[i].name if i < len(PEOPLE) else f"Speaker {i + 1}"
        # Staggered joins like the fixture, bounded so late speakers still talk a lot.
        join = PEOPLE[i].join_s if i < len(PEOPLE) else 15.0 + 10.0 * (i - 2)
        join = min(join, 120.0, minutes * 60 / 4)
        ext = ("webm", "ogg", "mp3")[i % 3]
        out.append(
            Speaker(
                i, name, voice, speed, pitch, join, f"speaker{i + 1}.{ext}", _participant_id(name)
            )
        )
    return out


def plan(
    speakers: list[Speaker], lines: Iterator[tuple[int, str]], until_s: float | None
) -> tuple[list[Utterance], int]:
    """Lay utterances end to end (never overlapping, never before the speaker joined).

    Clips are synthesised once per (voice, text) and reused, which keeps long meetings fast.
    Returns the utterances and the meeting length in samples.
    """
    cache: dict[tuple[int, str], np.ndarray] = {}
    out: list[Utterance] = []
    cursor = 0
    for n, (who, text) in enumerate(lines):
        sp = speakers[who]
        key = (who, text)
        if key not in cache:
            cache[key] = synthesize(text, sp.voice, sp.speed, sp.pitch)
        clip = cache[key]
        gap = round(GAPS_S[n % len(GAPS_S)] * TRACK_RATE) if out else round(0.5 * TRACK_RATE)
        start = max(cursor + gap, round((sp.join_s + 0.6) * TRACK_RATE))
        if until_s is not None and start + clip.size > (until_s - TAIL_S) * TRACK_RATE:
            break
        out.append(Utterance(who, text, start, clip))
        cursor = start + clip.size
    return out, cursor + round(TAIL_S * TRACK_RATE)


def bench_lines(speakers: int) -> Iterator[tuple[int, str]]:
    """The fixture script forever, its lines rotated over `speakers` people."""
    n = 0
    while True:
        for orig, text in SCRIPT:
            yield (orig + n // len(SCRIPT)) % speakers, text
            n += 1


def _noise_loop(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(round(NOISE_LOOP_S * TRACK_RATE)) * NOISE_RMS).astype(np.float32)


def render(sp: Speaker, utts: list[Utterance], end: int) -> Iterator[np.ndarray]:
    """The speaker's track, from their join time to the meeting end, in CHUNK-sized blocks."""
    join = round(sp.join_s * TRACK_RATE)
    noise = _noise_loop(1000 + sp.index)
    mine = [u for u in utts if u.speaker == sp.index]  # sorted by start, never overlapping
    k = 0  # first utterance that may still overlap the current block
    for pos in range(join, end, CHUNK):
        stop = min(pos + CHUNK, end)
        offs = np.arange(pos - join, stop - join) % noise.size
        block = noise[offs]
        while k < len(mine) and mine[k].start + mine[k].clip.size <= pos:
            k += 1
        for u in mine[k:]:
            if u.start >= stop:
                break
            a, b = max(pos, u.start), min(stop, u.start + u.clip.size)
            block[a - pos : b - pos] += u.clip[a - u.start : b - u.start]
        yield block


# extension -> (container, codec, sample rate, bit rate, codec options)
ENCODINGS: dict[str, tuple[str, str, int, int, dict[str, str]]] = {
    "webm": ("webm", "libopus", 48000, 12000, {"application": "voip", "vbr": "on"}),
    "ogg": ("ogg", "libopus", 48000, 12000, {"application": "voip", "vbr": "on"}),
    # MPEG-2 layer III at 24 kHz makes the pipeline resample a mismatched rate; 32 kb/s is the
    # least that keeps tiny.en's WER on it close to the Opus tracks.
    "mp3": ("mp3", "libmp3lame", 24000, 32000, {}),
}
# Benchmark meetings trade a little quality for ~2x faster encoding (libopus complexity 3,
# LAME -q 7); the committed fixture keeps the defaults.
FAST_OPTIONS = {"compression_level": "3"}
FAST_MP3_OPTIONS = {"compression_level": "7"}


def encode(path: Path, blocks: Iterator[np.ndarray], fast: bool = False) -> None:
    """Stream float blocks at TRACK_RATE into `path`, bit-exact (no versions, dates, random ids)."""
    fmt, codec, rate, bit_rate, opts = ENCODINGS[path.suffix.lstrip(".")]
    if fast:
        opts = {**opts, **(FAST_MP3_OPTIONS if codec == "libmp3lame" else FAST_OPTIONS)}
    container_opts = {"fflags": "+bitexact"}
    if fmt == "mp3":
        container_opts["id3v2_version"] = "0"  # no ID3 tag naming the muxer version
    with av.open(str(path), "w", format=fmt, options=container_opts) as out:
        out.metadata.clear()
        stream = out.add_stream(codec, rate=rate, options=opts)
        stream.layout = "mono"
        stream.format = "flt" if codec == "libopus" else "fltp"
        if bit_rate:
            stream.bit_rate = bit_rate
        stream.codec_context.flags |= av.codec.context.Flags.bitexact
        resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=rate)
        pts = 0
        for block in blocks:
            frame = av.AudioFrame.from_ndarray(block[None, :], format="flt", layout="mono")
            frame.sample_rate = TRACK_RATE
            frame.pts = pts
            frame.time_base = Fraction(1, TRACK_RATE)
            pts += block.size
            for f in resampler.resample(frame):
                out.mux(stream.encode(f))
        for f in resampler.resample(None):
            out.mux(stream.encode(f))
        out.mux(stream.encode(None))


def _write_track(path: Path, sp: Speaker, mine: list[Utterance], end: int, fast: bool) -> None:
    encode(path, render(sp, mine, end), fast)


def truth(speakers: list[Speaker], utts: list[Utterance], end: int) -> dict:
    return {
        "duration_s": round(end / TRACK_RATE, 3),
        "sample_rate": TRACK_RATE,
        "speakers": [{"speaker": s.index, "name": s.name, "join_s": s.join_s} for s in speakers],
        "utterances": [
            {
                "speaker": u.speaker,
                "name": speakers[u.speaker].name,
                "start": round(u.start / TRACK_RATE, 3),
                "end": round((u.start + u.clip.size) / TRACK_RATE, 3),
                "text": u.text,
            }
            for u in utts
        ],
    }


def generate(
    out_dir: Path, minutes: float | None = None, speakers: int = 3, daily_names: bool = False
) -> Path:
    """Write `<out_dir>/meeting/` and `<out_dir>/meeting.truth.json`; returns the folder."""
    if minutes is None:
        people = default_speakers()
        utts, end = plan(people, iter(SCRIPT), None)
    else:
        people = bench_speakers(speakers, minutes)
        utts, end = plan(people, bench_lines(speakers), minutes * 60)
    folder = out_dir / "meeting"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    files = [_file_name(sp, daily_names) for sp in people]
    jobs = [
        (folder / f, sp, [u for u in utts if u.speaker == sp.index], end, minutes is not None)
        for f, sp in zip(files, people, strict=True)
    ]
    if minutes is None:
        for job in jobs:
            _write_track(*job)
    else:
        # Tracks are independent: long meetings encode one track per core. Spawned, not forked:
        # the pool's own threads run while it starts workers, and a fork that copies a lock one
        # of them holds (an import lock, seen here) leaves the worker waiting on it forever.
        workers = min(len(jobs), os.cpu_count() or 1)
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=spawn) as pool:
            for fut in [pool.submit(_write_track, *job) for job in jobs]:
                fut.result()
    if not daily_names:
        manifest = {
            "room": ROOM,
            "started_at_ms": RECORDING_START_MS,
            "language": "en",
            "participants": [
                {
                    "file": f,
                    "participant_id": sp.participant_id,
                    "name": sp.name,
                    "offset_s": sp.join_s,
                    "consent": True,
                }
                for f, sp in zip(files, people, strict=True)
            ],
        }
        _write_json(folder / "recording.json", manifest)
    doc = truth(people, utts, end)
    for sp, f in zip(people, files, strict=True):
        doc["speakers"][sp.index]["file"] = f
    _write_json(out_dir / "meeting.truth.json", doc)
    return folder


def _file_name(sp: Speaker, daily_names: bool) -> str:
    if not daily_names:
        return sp.file
    track_ms = RECORDING_START_MS + round(sp.join_s * 1000)
    return f"{RECORDING_START_MS}-{sp.participant_id}-cam-audio-{track_ms}.webm"


def _write_json(path: Path, doc: dict) -> None:
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _words(text: str) -> list[str]:
    """Lower-case words for WER; "$20,000" and "20,000 dollars" both become "20000 dollars"."""
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text.lower())
    text = re.sub(r"\$(\d+)", r"\1 dollars", text)
    return re.findall(r"[a-z0-9']+", text)


def wer(ref: list[str], hyp: list[str]) -> float:
    """Word error rate: word-level Levenshtein distance over the reference length."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1] / max(len(ref), 1)


def measure(out_dir: Path) -> dict[str, float]:
    """Per-speaker WER of each track (faster-whisper tiny.en, as the pipeline runs it)."""
    from faster_whisper import WhisperModel

    from reflector_cli.core.config import default_model_path

    doc = json.loads((out_dir / "meeting.truth.json").read_text())
    model = WhisperModel(default_model_path(), device="cpu", compute_type="int8", cpu_threads=1)
    result = {}
    for sp in doc["speakers"]:
        segments, _ = model.transcribe(
            str(out_dir / "meeting" / sp["file"]),
            language="en",
            vad_filter=True,
            beam_size=1,
            word_timestamps=True,
        )
        hyp = [w for s in segments for w in _words(s.text)]
        ref = [
            w for u in doc["utterances"] if u["speaker"] == sp["speaker"] for w in _words(u["text"])
        ]
        result[sp["name"]] = round(wer(ref, hyp), 3)
        print(f"{sp['name']}: WER {result[sp['name']]:.3f}\n  hyp: {' '.join(hyp)}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("fixtures"))
    parser.add_argument("--daily-names", action="store_true", help="Daily-style names, no manifest")
    parser.add_argument("--minutes", type=float, help="long benchmark meeting of this length")
    parser.add_argument("--speakers", type=int, default=3, help="speakers (with --minutes)")
    parser.add_argument("--measure", action="store_true", help="print per-speaker WER after")
    args = parser.parse_args(argv)
    if args.speakers < 1 or (args.minutes is None and args.speakers != 3):
        parser.error("--speakers needs --minutes and must be at least 1")
    if shutil.which(ESPEAK) is None:
        parser.error(f"{ESPEAK} not found on PATH")
    t0 = time.monotonic()
    folder = generate(args.out, args.minutes, args.speakers, args.daily_names)
    size = sum(p.stat().st_size for p in folder.iterdir())
    print(f"wrote {folder} ({size / 1024:.0f} KiB) in {time.monotonic() - t0:.1f} s")
    if args.measure:
        measure(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
