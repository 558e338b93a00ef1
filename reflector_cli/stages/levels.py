"""Short-time level envelopes of the padded tracks, streamed in blocks (bounded memory); the
per-pair leak gains that crosstalk suppression compares words against; and the long quiet
stretches the VAD can skip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from reflector_cli.core.models import PadTrackOut
from reflector_cli.stages.context import StageContext

FRAME_S = 0.01
# Blocks of a few seconds: libsndfile's FLAC reader is fastest there, memory stays small.
BLOCK_FRAMES = 400
# -100 dBFS: the level of digital silence, so log10 never sees 0.
FLOOR_POWER = 1e-10
# Leak gains are estimated on ~100 ms windows: a syllable, long enough that the few
# milliseconds a leak arrives late (and a short room reverb) do not matter.
SMOOTH_S = 0.1
# A frame shows track j as the source when j is the loudest track by this much: the largest
# lead that still finds enough frames, so other talkers are least likely to be mixed in.
SOURCE_LEADS_DB = (10.0, 6.0, 3.0)
# Where j is the source, mic i carries j's leak plus whatever i says meanwhile (overlaps only add
# energy), so the leak is the lower part of the distribution: its first quartile, not its median.
LEAK_QUANTILE = 25
# ...and j is this far above its own noise floor (it is speaking, not hissing).
ACTIVE_DB = 15.0
MIN_SOURCE_FRAMES = 50
# A "leak" no weaker than this relative to its source is not a leak we can separate by level
# (two open laptops side by side): treat the pair as unknown, so level alone never removes.
MAX_LEAK_DB = -3.0


def pcm16(mono: np.ndarray) -> np.ndarray:
    """Float samples as libsndfile stores them in 16-bit FLAC: x32768, rounded half to even,
    clipped. Writing these instead of the floats gives the same file, without libsndfile's
    own conversion (15-minute track: 0.73-0.78 -> 0.66-0.67 CPU-s including this)."""
    scaled = np.rint(mono.astype(np.float32, copy=False) * np.float32(32768.0))
    return np.clip(scaled, -32768, 32767).astype(np.int16)


class EnvelopeBuilder:
    """The envelope of a signal fed in blocks of any size: mean power of every frame of `hop`
    samples (the last frame may be shorter), as float32."""

    def __init__(self, hop: int) -> None:
        self.hop = max(1, hop)
        self.carry = np.zeros(0, dtype=np.float64)
        self.out: list[np.ndarray] = []

    def add_power(self, sq: np.ndarray) -> None:
        """Samples already squared (float64, channels averaged)."""
        sq = np.concatenate([self.carry, sq])
        whole = len(sq) // self.hop * self.hop
        self.out.append(sq[:whole].reshape(-1, self.hop).mean(axis=1).astype(np.float32))
        self.carry = sq[whole:]

    def add_pcm16(self, pcm: np.ndarray) -> None:
        """16-bit samples (see `pcm16`) as a reader gets them back from the file (/32768): the
        envelope equals `envelope()` of the file they were written to."""
        values = pcm.astype(np.float64) / 32768.0
        self.add_power(values * values)

    def silence(self, samples: int) -> None:
        while samples > 0:
            n = min(samples, self.hop * BLOCK_FRAMES)
            self.add_power(np.zeros(n, dtype=np.float64))
            samples -= n

    def result(self) -> np.ndarray:
        tail = [np.array([self.carry.mean()], dtype=np.float32)] if len(self.carry) else []
        parts = self.out + tail
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def envelope(path: Path, frame_s: float = FRAME_S) -> np.ndarray:
    """Mean power of every `frame_s` frame of an audio file (channels averaged), as float32."""
    with sf.SoundFile(str(path)) as f:
        env = EnvelopeBuilder(round(f.samplerate * frame_s))
        for block in f.blocks(blocksize=env.hop * BLOCK_FRAMES, dtype="float32", always_2d=True):
            env.add_power(np.mean(block.astype(np.float64) ** 2, axis=1))
    return env.result()


def to_bytes(env: np.ndarray) -> bytes:
    """An envelope as stored next to its padded track (little-endian float32)."""
    return env.astype("<f4").tobytes()


def from_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<f4").astype(np.float32)


def stored(padded: PadTrackOut, ctx: StageContext) -> np.ndarray | None:
    """The envelope pad_track stored next to the padded track, or None (an older checkpoint,
    or the file deleted)."""
    if not padded.levels_key or not ctx.storage.exists(padded.levels_key):
        return None
    return from_bytes(ctx.storage.read_bytes(padded.levels_key))


def track_envelope(padded: PadTrackOut, ctx: StageContext) -> np.ndarray:
    """The envelope pad_track stored beside the padded track (no decode), else computed from
    the padded file itself: the same values, so a lost envelope never changes a result."""
    env = stored(padded, ctx)
    if env is not None:
        return env
    with ctx.storage.local_path(padded.key) as path:
        return envelope(path)


def db(power: np.ndarray | float) -> np.ndarray:
    return 10.0 * np.log10(np.maximum(power, FLOOR_POWER))


def noise_floor_db(env: np.ndarray) -> float:
    """A track's noise floor: a low percentile of its non-silent frames (digital silence, the
    padding, would pull it to the floor of the scale)."""
    live = env[env > FLOOR_POWER]
    return float(db(np.percentile(live, 10))) if len(live) else float(db(0.0))


@dataclass(frozen=True)
class Levels:
    """Envelopes of every track on the meeting timeline, with cumulative sums for span means."""

    power: np.ndarray  # (tracks, frames) mean power per frame
    frame_s: float = FRAME_S
    # smoothed_db and floors_db, computed once: the leak gains and the excess both need them.
    _memo: dict[str, np.ndarray] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_envelopes(cls, envs: Sequence[np.ndarray], frame_s: float = FRAME_S) -> Levels:
        n = max((len(e) for e in envs), default=0)
        power = np.zeros((len(envs), n), dtype=np.float32)
        for k, e in enumerate(envs):
            power[k, : len(e)] = e
        return cls(power=power, frame_s=frame_s)

    @property
    def tracks(self) -> int:
        return self.power.shape[0]

    def span_db(self, start: float, end: float) -> np.ndarray:
        """Each track's level (dB) over [start, end): mean power, so both tracks are judged on
        exactly the same stretch and word-boundary errors cancel out."""
        n = self.power.shape[1]
        a = min(max(0, int(start / self.frame_s)), max(0, n - 1))
        b = min(max(a + 1, int(np.ceil(end / self.frame_s))), n)
        if n == 0:
            return np.full(self.tracks, db(0.0))
        return db(self.power[:, a:b].mean(axis=1))

    def floors_db(self) -> np.ndarray:
        """Each track's noise floor (see noise_floor_db)."""
        if "floors" not in self._memo:
            self._memo["floors"] = np.array([noise_floor_db(p) for p in self.power])
        return self._memo["floors"]

    def smoothed_db(self) -> np.ndarray:
        """(tracks, frames): each track's level over a SMOOTH_S window around every frame."""
        if "smoothed" not in self._memo:
            win = max(1, round(SMOOTH_S / self.frame_s))
            kernel = np.ones(win) / win
            self._memo["smoothed"] = np.stack(
                [db(np.convolve(p, kernel, mode="same")) for p in self.power]
            )
        return self._memo["smoothed"]


def leak_gains(levels: Levels) -> np.ndarray:
    """gain[i, j] (dB): how loud track j's talker is on microphone i, relative to j's own.

    Measured from the meeting itself: the first quartile of level_i - level_j over the frames
    where j is clearly the source (loudest track by a margin, well above its floor). NaN when j
    is never clearly the source, or when the "leak" is about as loud as the source: no level
    evidence.
    """
    n = levels.tracks
    gains = np.full((n, n), np.nan)
    if n < 2 or levels.power.shape[1] == 0:
        return gains
    s = levels.smoothed_db()
    floors = levels.floors_db()
    for j in range(n):
        source = _source_frames(s, j, floors[j])
        if source is None:
            continue
        for i in range(n):
            if i != j:
                g = float(np.percentile(s[i, source] - s[j, source], LEAK_QUANTILE))
                gains[i, j] = g if g <= MAX_LEAK_DB else np.nan
    return gains


def excess_db(level: np.ndarray, gains: np.ndarray, floors: np.ndarray) -> np.ndarray:
    """Each track's level (dB; shape (tracks,) for one span, (tracks, frames) per frame) above
    what the others' leak predicts there: their levels plus the leak gains (`leak_gains`),
    summed in power with the track's own noise floor. A pair without a known gain predicts no
    leak. Well above 0 dB: energy of the track's own; near or below 0: only others' echo."""
    lvl = level.reshape(len(level), -1)
    known = np.isfinite(gains)
    np.fill_diagonal(known, False)
    gain_power = np.where(known, 10.0 ** (np.where(known, gains, 0.0) / 10.0), 0.0)
    predicted = gain_power @ (10.0 ** (lvl / 10.0)) + 10.0 ** (floors[:, None] / 10.0)
    return (lvl - db(predicted)).reshape(level.shape)


def _source_frames(s: np.ndarray, j: int, floor: float) -> np.ndarray | None:
    """Frames where track j is clearly the one talking, or None when there are too few."""
    loudest_other = np.delete(s, j, axis=0).max(axis=0)
    active = s[j] >= floor + ACTIVE_DB
    for lead in SOURCE_LEADS_DB:
        source = active & (s[j] >= loudest_other + lead)
        if source.sum() >= MIN_SOURCE_FRAMES:
            return source
    return None


# Where the VAD need not look (see live_spans): a quiet stretch stays below the track's noise
# floor + QUIET_ABOVE_FLOOR_DB, and never above QUIET_MAX_DBFS (a loud room's floor gates
# nothing). The VAD still sees QUIET_TAIL_S of it after speech (it ends a region only after 2 s of
# silence, then pads it by 0.4 s: cut sooner, every region would run to the cut) and QUIET_LEAD_S
# before speech resumes (more than its 0.4 s onset padding); shorter stretches are not skipped.
QUIET_ABOVE_FLOOR_DB = 6.0
QUIET_MAX_DBFS = -50.0
QUIET_TAIL_S = 3.0
QUIET_LEAD_S = 1.0
QUIET_MIN_S = QUIET_TAIL_S + QUIET_LEAD_S + 1.0


def quiet_below_db(floor_db: float) -> float:
    """The level under which a track with this noise floor is quiet: nobody speaks into it."""
    return min(floor_db + QUIET_ABOVE_FLOOR_DB, QUIET_MAX_DBFS)


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of every run of True in a boolean array."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.view(np.int8), [0]])))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def live_spans(env: np.ndarray, frame_s: float = FRAME_S) -> list[tuple[float, float]]:
    """Stretches of a track worth a VAD pass (seconds): everything but long quiet stretches.

    Digital silence (padding, muted gaps) and a noise floor with nobody speaking cannot hold
    speech; skipping them saves the VAD most of a track that is mostly other people's turns.
    """
    n = len(env)
    if n == 0:
        return []
    level = db(env)
    quiet = (level < quiet_below_db(noise_floor_db(env))) | (env <= FLOOR_POWER)
    min_frames = round(QUIET_MIN_S / frame_s)
    tail, lead = round(QUIET_TAIL_S / frame_s), round(QUIET_LEAD_S / frame_s)
    spans: list[tuple[float, float]] = []
    pos = 0
    for a, b in runs(quiet):
        if b - a < min_frames:
            continue
        cut_a, cut_b = (a + tail if a > 0 else 0), (b - lead if b < n else n)
        if cut_a > pos:
            spans.append((pos * frame_s, cut_a * frame_s))
        pos = cut_b
    if pos < n:
        spans.append((pos * frame_s, n * frame_s))
    return spans
