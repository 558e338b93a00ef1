"""Real speech (espeak-ng) on per-participant microphones that also pick up every other talker
a few ms late through a short room response: the crosstalk test meetings."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf

from benchmarks.crosstalk_cases import convolve, room_response
from reflector_cli.core.models import Word

RATE = 22050  # espeak-ng's own rate; the envelope works at any rate
LEAK_DB = -20.0
A_TEXT = "the quarterly numbers look strong and the launch is on schedule"
B_TEXT = "we should hire two more engineers before the summer begins"


def speech(text: str, voice: str = "en-us", gain_db: float = 0.0) -> np.ndarray:
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "--stdout", text], check=True, capture_output=True
    ).stdout
    audio, rate = sf.read(io.BytesIO(wav), dtype="float32")
    assert rate == RATE
    loud = np.flatnonzero(np.abs(audio) > 0.01)
    return audio[loud[0] : loud[-1] + 1] * np.float32(0.7 * 10 ** (gain_db / 20))


class Meeting:
    """Close-microphone signals placed on a timeline; every talker leaks into every other mic."""

    def __init__(self, seconds: float) -> None:
        self.n = round(seconds * RATE)
        self.own: list[np.ndarray] = []
        self.words: list[list[Word]] = []

    def talker(self) -> int:
        self.own.append(np.zeros(self.n, dtype=np.float32))
        self.words.append([])
        return len(self.own) - 1

    def say(self, who: int, at: float, text: str, **kw: float | str) -> None:
        """Speech on `who`'s mic at `at` s, and its words evenly over it, on `who`'s track."""
        clip = speech(text, **kw)  # type: ignore[arg-type]
        a = round(at * RATE)
        self.own[who][a : a + len(clip)] += clip
        self.heard(who, at, len(clip) / RATE, text)

    def heard(self, track: int, at: float, seconds: float, text: str) -> None:
        """Words the recogniser reports on `track` (own speech or a leak it transcribed)."""
        tokens = text.split()
        step = seconds / len(tokens)
        self.words[track] += [
            Word(
                text=t,
                start=round(at + k * step, 3),
                end=round(at + (k + 0.8) * step, 3),
                speaker=track,
            )
            for k, t in enumerate(tokens)
        ]

    def mics(self, leak_db: float = LEAK_DB) -> list[np.ndarray]:
        rng = np.random.default_rng(3)
        out = []
        for i, own in enumerate(self.own):
            mic = own.astype(np.float64)
            for j, other in enumerate(self.own):
                if j != i:
                    late = round(0.004 * RATE)  # a few ms of flight
                    leak = convolve(other.astype(np.float64), room_response(rng, RATE, 0.25))
                    mic[late:] += leak[: self.n - late] * 10 ** (leak_db / 20)
            mic += rng.standard_normal(self.n) * 10 ** (-70 / 20)
            out.append(mic.astype(np.float32))
        return out

    def write_folder(self, folder: Path, names: list[str], leak_db: float = LEAK_DB) -> Path:
        """One FLAC per participant plus recording.json: a folder `reflector process` reads."""
        folder.mkdir(parents=True, exist_ok=True)
        parts = []
        for name, mic in zip(names, self.mics(leak_db), strict=True):
            sf.write(folder / f"{name}.flac", mic, RATE, subtype="PCM_16")
            parts.append({"name": name, "file": f"{name}.flac", "offset_s": 0.0})
        (folder / "recording.json").write_text(json.dumps({"participants": parts}))
        return folder
