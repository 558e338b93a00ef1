"""Read a local folder of per-participant audio files (plus an optional `recording.json`).

Every track is probed (container, audio stream, one decodable frame, duration) before anything
is stored, so bad input fails early with one line naming the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
from pathlib import Path, PurePosixPath

import av
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reflector_cli.core.audio_io import open_audio
from reflector_cli.core.errors import UserError, one_line

AUDIO_EXTENSIONS = frozenset(
    {".webm", ".ogg", ".opus", ".wav", ".mp3", ".m4a", ".flac", ".mka", ".mp4"}
)
MANIFEST = "recording.json"
# Name offset and container start time may differ by this much before we warn.
OFFSET_TOLERANCE_S = 0.25
# Start times below this are codec priming (an mp3 starts at ~23 ms), not a real offset.
MIN_CONTAINER_START_S = 0.05
# Bounds checked before anything is stored: a meeting is shorter than a day, a manifest is
# a few KB, and a name or id longer than this is a mistake (or an attack on the database).
MAX_OFFSET_S = 24 * 3600.0
MAX_MANIFEST_BYTES = 1 << 20
MAX_TEXT = 256
# A file whose audio ends this much (or 5 %) before its declared length was cut short.
TRUNCATION_SLACK_S = 1.0
# Epoch milliseconds up to the year 2500: anything past it is not a recording start.
MAX_EPOCH_MS = 16_725_225_600_000

DAILY_NAME = re.compile(
    r"^(?P<rec>\d{1,16})-(?P<pid>.+)-(?P<kind>cam-audio|screen-audio|cam-video|screen-video)"
    r"-(?P<start>\d{1,16})$"
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ManifestParticipant(_Strict):
    file: str = Field(max_length=MAX_TEXT)
    participant_id: str | None = Field(default=None, max_length=MAX_TEXT)
    name: str | None = Field(default=None, max_length=MAX_TEXT)
    # Range checked by check_offset, for a message that names the limit.
    offset_s: float | None = Field(default=None, description="None: detect it")
    consent: bool = True


class Manifest(_Strict):
    room: str | None = Field(default=None, max_length=MAX_TEXT)
    started_at_ms: int | None = Field(default=None, ge=0, le=MAX_EPOCH_MS)
    language: str | None = Field(default=None, max_length=MAX_TEXT)
    participants: list[ManifestParticipant] = Field(min_length=1, max_length=1000)


class FolderTrack(_Strict):
    file: str = Field(description="file name inside the folder")
    path: Path
    participant_id: str
    name: str | None = None
    offset_s: float = 0.0
    consent: bool = True
    duration_s: float = Field(description="audio length of the file itself, without offset")


class FolderScan(_Strict):
    folder: Path
    room: str | None = None
    started_at_ms: int | None = None
    language: str | None = None
    tracks: list[FolderTrack]
    warnings: list[str] = []


class DailyName(_Strict):
    recording_start_ms: int
    participant_id: str
    kind: str
    track_start_ms: int

    @property
    def offset_s(self) -> float:
        return (self.track_start_ms - self.recording_start_ms) / 1000


def check_offset(
    where: str, offset_s: float, limit_s: float = MAX_OFFSET_S, limit: str = "the 24 h limit"
) -> float:
    """`offset_s` when it is a finite number of seconds in [0, limit_s], else a one-line
    UserError naming `where` (an unbounded offset would pad silence for ever)."""
    if not math.isfinite(offset_s):
        raise UserError(f"{where}: {offset_s} s is not a finite number of seconds")
    if offset_s < 0:
        raise UserError(f"{where}: {offset_s:g} s is negative")
    if offset_s > limit_s:
        raise UserError(f"{where}: {offset_s:g} s is beyond {limit}")
    return offset_s


def _where(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as `participants[1].offset_s`."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "top level"


def parse_daily_name(name: str) -> DailyName | None:
    """`{rec_start_ms}-{participant}-cam-audio-{track_start_ms}[.ext]`, else None."""
    stem = PurePosixPath(name).name
    suffix = PurePosixPath(stem).suffix
    if suffix.lower() in AUDIO_EXTENSIONS:
        stem = stem[: -len(suffix)]
    m = DAILY_NAME.match(stem)
    if not m:
        return None
    return DailyName(
        recording_start_ms=int(m["rec"]),
        participant_id=m["pid"],
        kind=m["kind"],
        track_start_ms=int(m["start"]),
    )


def _is_candidate(p: Path) -> bool:
    if not p.is_file() or p.name.startswith(".") or p.name == MANIFEST:
        return False
    return p.suffix.lower() in AUDIO_EXTENSIONS or parse_daily_name(p.name) is not None


def _candidates(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if _is_candidate(p)), key=lambda p: p.name)


def _check_folder(path: Path) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"{path}: no such file or directory")
    if not path.is_dir():
        raise UserError(f"{path}: not a directory (give a folder of per-participant audio files)")
    return path


class Probe(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True)

    start_s: float
    duration_s: float


# Probes of unchanged files, by identity and version (path, device, inode, size, mtime): a
# local run scans the folder twice (the CLI checks the input, then get_recording, in the same
# process), and measuring means demuxing every packet: ~0.13 s per 15-minute track.
_PROBED: dict[tuple[str, int, int, int, int], Probe] = {}
_PROBED_MAX = 256


def probe_audio(path: Path) -> Probe:
    """Open, find the audio stream, decode one frame and measure the stream (demux only).

    Raises UserError("<path>: <problem>") for anything a retry cannot fix.
    """
    st = path.stat()
    if st.st_size == 0:
        raise UserError(f"{path}: zero-length file")
    key = (str(path.resolve()), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    if (known := _PROBED.get(key)) is not None:
        return known
    probe = _measure(path)
    if len(_PROBED) >= _PROBED_MAX:
        _PROBED.clear()
    _PROBED[key] = probe
    return probe


def _measure(path: Path) -> Probe:
    with open_audio(path, str(path)) as (container, stream):
        tb = float(stream.time_base) if stream.time_base else 0.0
        first: int | None = None
        end: int | None = None
        decoded = False
        start_s: float = 0.0
        try:
            for packet in container.demux(stream):
                if packet.pts is None:
                    continue
                if not decoded:
                    # One bad packet is not a bad file; keep looking for a good one.
                    with contextlib.suppress(av.error.InvalidDataError):
                        frames = packet.decode()
                        if frames:
                            decoded = True
                            # Where the first decoded sample sits (after codec pre-skip):
                            # the same reference pad_track aligns audio to.
                            start_s = frames[0].time
                            if start_s is None:
                                start_s = packet.pts * tb
                first = packet.pts if first is None else min(first, packet.pts)
                stop = packet.pts + (packet.duration or 0)
                end = stop if end is None else max(end, stop)
        except av.FFmpegError as e:
            if not decoded:
                raise UserError(f"{path}: corrupt audio data ({one_line(e.strerror)})") from None
            # A truncated tail (crashed recorder) still leaves usable audio before it.
        if not decoded:
            raise UserError(f"{path}: no decodable audio frame")
        if first is None or end is None:
            return Probe(start_s=start_s, duration_s=0.0)
        _check_complete(path, container, end * tb)
        # Measured from the first decoded sample, like the padded track will be.
        return Probe(start_s=start_s, duration_s=max(0.0, end * tb - max(start_s, first * tb)))


def _check_complete(path: Path, container: av.container.InputContainer, end_s: float) -> None:
    """Refuse a file whose audio stops well before the length its header declares: a copy or
    download cut short (a recorder that crashed writes no length, so it is not refused)."""
    declared = (container.duration or 0) / 1_000_000
    if declared > 0 and declared - end_s > max(TRUNCATION_SLACK_S, 0.05 * declared):
        raise UserError(
            f"{path}: truncated: audio ends at {end_s:.1f} s but the file header says "
            f"{declared:.1f} s (an incomplete copy or download?)"
        )


def _load_manifest(folder: Path) -> Manifest | None:
    mpath = folder / MANIFEST
    if not mpath.exists():
        return None
    size = mpath.stat().st_size
    if size > MAX_MANIFEST_BYTES:
        raise UserError(
            f"{mpath}: {size} bytes is over the {MAX_MANIFEST_BYTES} byte limit for a manifest"
        )
    try:
        raw = json.loads(mpath.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{mpath}: invalid JSON ({one_line(e)})") from None
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        raise UserError(f"{mpath}: {_where(err['loc'])}: {one_line(err['msg'])}") from None
    seen: set[str] = set()
    for i, p in enumerate(manifest.participants):
        if p.offset_s is not None:
            check_offset(f"{mpath}: participants[{i}].offset_s", p.offset_s)
        p.file = _inside(folder, p.file, f"{mpath}: participants[{i}].file {p.file!r}")
        if p.file in seen:
            raise UserError(f"{mpath}: file {p.file!r} is listed twice")
        seen.add(p.file)
        if not (folder / p.file).is_file():
            raise UserError(f"{mpath}: file {p.file!r} is not in {folder}")
    return manifest


def _inside(folder: Path, file: str, where: str) -> str:
    """`file` as a normalised relative POSIX path that stays inside `folder`, else UserError.

    Subfolders are fine (`tracks/alice.webm`); `..`, absolute paths and symlinks that lead
    out of the folder are not: a manifest must never make us read files elsewhere.
    """
    rel = PurePosixPath(file)
    if "\\" in file or rel.is_absolute() or not rel.parts or ".." in rel.parts:
        raise UserError(f"{where}: must be a relative path inside the folder (no '..')")
    norm = rel.as_posix()  # PurePosixPath already dropped "." parts and doubled slashes
    if not (folder / norm).resolve().is_relative_to(folder.resolve()):
        raise UserError(f"{where}: leads outside the folder through a symlink")
    return norm


def _detect_offset(file: str, probe: Probe, daily: DailyName | None, warnings: list[str]) -> float:
    """Daily name first, else the container start time; warn when the two disagree."""
    container_start = probe.start_s if probe.start_s >= MIN_CONTAINER_START_S else 0.0
    if daily is None:
        return check_offset(f"{file}: container start time", container_start)
    named = check_offset(f"{file}: offset from the file name", max(0.0, daily.offset_s))
    if container_start and abs(container_start - named) > OFFSET_TOLERANCE_S:
        warnings.append(
            f"{file}: file name says offset {named:.3f}s but the container starts at "
            f"{container_start:.3f}s; using the file name"
        )
    return named


def scan_folder(path: Path, include_screen_audio: bool = False) -> FolderScan:
    """List and validate the tracks of a folder recording (see SPEC-stages.md, inputs §2)."""
    folder = _check_folder(path)
    manifest = _load_manifest(folder)
    warnings: list[str] = []
    tracks: list[FolderTrack] = []
    if manifest is not None:
        listed = sorted(manifest.participants, key=lambda p: p.file)
        for entry in listed:
            p = folder / entry.file
            daily = parse_daily_name(p.name)
            probe = probe_audio(p)
            offset = entry.offset_s
            if offset is None:
                offset = _detect_offset(entry.file, probe, daily, warnings)
            default_id = daily.participant_id if daily else p.stem
            tracks.append(
                FolderTrack(
                    file=entry.file,
                    path=p,
                    participant_id=entry.participant_id or default_id,
                    name=entry.name,
                    offset_s=offset,
                    consent=entry.consent,
                    duration_s=probe.duration_s,
                )
            )
        return FolderScan(
            folder=folder,
            room=manifest.room,
            started_at_ms=manifest.started_at_ms,
            language=manifest.language,
            tracks=tracks,
            warnings=warnings,
        )

    rec_starts: set[int] = set()
    for p in _candidates(folder):
        daily = parse_daily_name(p.name)
        if daily and daily.kind.endswith("video"):
            continue  # video tracks carry no speaker audio
        if daily and daily.kind == "screen-audio" and not include_screen_audio:
            warnings.append(f"{p.name}: screen-audio track skipped (include_screen_audio is off)")
            continue
        probe = probe_audio(p)
        if daily:
            rec_starts.add(daily.recording_start_ms)
        tracks.append(
            FolderTrack(
                file=p.name,
                path=p,
                participant_id=daily.participant_id if daily else p.stem,
                # A Daily name has no human name in it; get_participants says "Speaker N".
                name=None if daily else p.stem,
                offset_s=_detect_offset(p.name, probe, daily, warnings),
                duration_s=probe.duration_s,
            )
        )
    if not tracks:
        raise UserError(
            f"{folder}: no audio files (expected one of {', '.join(sorted(AUDIO_EXTENSIONS))})"
        )
    if len(rec_starts) > 1:
        warnings.append(
            f"{folder}: Daily file names carry {len(rec_starts)} different recording start times"
        )
    return FolderScan(
        folder=folder,
        started_at_ms=min(rec_starts) if rec_starts else None,
        tracks=tracks,
        warnings=warnings,
    )


def recording_id_for_folder(path: Path) -> str:
    """`rec-<16 hex>` from the folder's content (names, bytes, manifest), not its location."""
    folder = _check_folder(path)
    files = _candidates(folder)
    listed: set[str] = set()
    if (folder / MANIFEST).is_file():
        files.append(folder / MANIFEST)
        # Manifest tracks may have any extension; hash them too (bad manifests fail later).
        try:
            raw = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
            listed = {_inside(folder, str(p["file"]), "") for p in raw.get("participants", [])}
        except (ValueError, TypeError, KeyError, AttributeError, UserError):
            listed = set()  # a bad manifest is refused by scan_folder, with the reason
    files += [folder / n for n in listed if (folder / n).is_file() and folder / n not in files]
    h = hashlib.sha256()

    def rel(p: Path) -> str:  # a top-level file hashes by its bare name, as it always did
        return p.relative_to(folder).as_posix()

    for p in sorted(files, key=rel):
        h.update(rel(p).encode() + b"\0" + str(p.stat().st_size).encode() + b"\0")
        with p.open("rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    return "rec-" + h.hexdigest()[:16]
