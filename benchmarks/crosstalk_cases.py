"""Crosstalk meetings built from the shared real-voice meeting: every other talker leaks into each
microphone a few ms late, through a short synthetic room response, at a chosen level.

Also the genuine-overlap variant (utterances moved so two people talk at once). Deterministic
for a seed; writes one FLAC per participant plus recording.json and truth.json.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
SET = "real-read-meeting"
NOISE_DBFS = -70.0  # microphone self-noise, so no track is digital silence


def shared_data(name: str = SET) -> Path:
    """The shared data set: $REFLECTOR_SHARED_DATA, else ../shared/data next to the repository
    (a worktree sits one level deeper). A clear error when absent."""
    env = os.environ.get("REFLECTOR_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates += [p / "shared" / "data" for p in (ROOT.parent, ROOT.parent.parent)]
    for c in candidates:
        if (c / name / "truth.json").is_file():
            return c / name
    tried = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(f"shared data set {name!r} not found (looked in {tried})")


@dataclass
class Meeting:
    """Each participant's clean close-microphone signal on the meeting timeline."""

    names: list[str]
    files: list[str]
    signals: list[np.ndarray]
    sample_rate: int
    truth: dict[str, Any]
    manifest: dict[str, Any] = field(default_factory=dict)


def load_meeting(folder: Path) -> Meeting:
    manifest = json.loads((folder / "recording.json").read_text())
    truth = json.loads((folder / "truth.json").read_text())
    parts = manifest["participants"]
    rate, tracks = 0, []
    for p in parts:
        audio, rate = sf.read(folder / p["file"], dtype="float32", always_2d=True)
        lead = np.zeros(round(p["offset_s"] * rate), dtype=np.float32)
        tracks.append(np.concatenate([lead, audio.mean(axis=1)]))
    n = max(len(t) for t in tracks)
    signals = [np.pad(t, (0, n - len(t))) for t in tracks]
    return Meeting(
        names=[p["name"] for p in parts],
        files=[p["file"] for p in parts],
        signals=signals,
        sample_rate=rate,
        truth=truth,
        manifest=manifest,
    )


def room_response(rng: np.random.Generator, rate: int, rt60: float) -> np.ndarray:
    """Direct path plus an exponentially decaying noise tail (-60 dB after rt60), unit energy."""
    n = round(rate * rt60)
    t = np.arange(n) / rate
    tail = rng.standard_normal(n) * 10 ** (-3 * t / rt60) * 0.3
    tail[0] = 1.0
    return tail / np.sqrt(np.sum(tail**2))


def convolve(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    size = 1 << int(np.ceil(np.log2(len(x) + len(h))))
    y = np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(h, size), size)
    return y[: len(x)]


def with_crosstalk(
    m: Meeting, levels_db: np.ndarray, seed: int, gains_db: list[float] | None = None
) -> list[np.ndarray]:
    """Track i = talker i (times its gain) + every talker j at levels_db[i, j] relative to j's
    own microphone, 1-10 ms late, through a 0.15-0.4 s room response, plus mic noise."""
    rng = np.random.default_rng(seed)
    gains = [10 ** (g / 20) for g in (gains_db or [0.0] * len(m.signals))]
    src = [s.astype(np.float64) * g for s, g in zip(m.signals, gains, strict=True)]
    out = []
    for i in range(len(src)):
        mic = src[i].copy()
        for j in range(len(src)):
            if j == i:
                continue
            h = room_response(rng, m.sample_rate, rng.uniform(0.15, 0.4))
            delay = round(rng.uniform(0.001, 0.010) * m.sample_rate)
            leak = convolve(src[j], h) * 10 ** (levels_db[i, j] / 20)
            mic[delay:] += leak[: len(leak) - delay]
        mic += rng.standard_normal(len(mic)) * 10 ** (NOISE_DBFS / 20)
        out.append(mic.astype(np.float32))
    return out


def uniform_levels(n: int, level_db: float) -> np.ndarray:
    return np.full((n, n), level_db)


def mixed_levels(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-30.0, -15.0, size=(n, n))


# (speaker moved, its utterance index among that speaker's, new start): each lands inside
# another speaker's utterance, so two people talk at once for a few seconds.
OVERLAPS = (("LS3752", 0, 24.0), ("ARCTIC_AEW", 1, 76.5), ("LS1988", 3, 104.0))


def with_overlaps(m: Meeting) -> Meeting:
    """Move the OVERLAPS utterances (samples and truth) into other people's turns."""
    signals = [s.copy() for s in m.signals]
    utts = [dict(u) for u in m.truth["utterances"]]
    rate = m.sample_rate
    for name, nth, new_start in OVERLAPS:
        k = m.names.index(name)
        u = [x for x in utts if x["speaker"] == name][nth]
        a, b = round(u["start"] * rate), round(u["end"] * rate)
        clip = m.signals[k][a:b].copy()
        signals[k][a:b] = 0.0
        c = round(new_start * rate)
        signals[k][c : c + len(clip)] += clip
        u["end"], u["start"] = round(new_start + (u["end"] - u["start"]), 3), new_start
        u["overlap"] = True
    utts.sort(key=lambda x: x["start"])
    truth = {**m.truth, "utterances": utts}
    return Meeting(m.names, m.files, signals, rate, truth, m.manifest)


def write_case(folder: Path, m: Meeting, tracks: list[np.ndarray]) -> Path:
    """Full-length tracks on the meeting timeline (offset 0), manifest and truth."""
    folder.mkdir(parents=True, exist_ok=True)
    parts = []
    for p, name, audio in zip(m.manifest["participants"], m.names, tracks, strict=True):
        sf.write(folder / p["file"], np.clip(audio, -1, 1), m.sample_rate, subtype="PCM_16")
        parts.append({**p, "name": name, "offset_s": 0.0})
    (folder / "recording.json").write_text(json.dumps({**m.manifest, "participants": parts}))
    (folder / "truth.json").write_text(json.dumps(m.truth, indent=1))
    return folder
