"""Source stages: resolve a recording into ingested tracks, then map tracks to participants.

Two sources: a local folder, or a Daily.co recording id (REST API + the customer's S3 bucket).
"""

from __future__ import annotations

import logging
from pathlib import Path, PurePosixPath

from reflector_cli.core.models import (
    GetParticipantsIn,
    Participant,
    ParticipantsOut,
    PipelineInput,
    RecordingOut,
    TrackRef,
)
from reflector_cli.sources.folder import (
    MAX_TEXT,
    MIN_CONTAINER_START_S,
    OFFSET_TOLERANCE_S,
    probe_audio,
    scan_folder,
)
from reflector_cli.stages.context import StageContext

log = logging.getLogger("reflector.source")


def raw_key(ctx: StageContext, recording_id: str, index: int, filename: str) -> str:
    return ctx.key(recording_id, "raw", f"{index}-{filename}")


def get_recording(inp: PipelineInput, ctx: StageContext) -> RecordingOut:
    """Scan and validate the folder, then copy each track into storage under `<rid>/raw/`."""
    if inp.source_kind == "daily":
        return _daily_recording(inp, ctx)
    scan = scan_folder(Path(inp.source), include_screen_audio=inp.include_screen_audio)
    tracks: list[TrackRef] = []
    for index, t in enumerate(scan.tracks):
        key = raw_key(ctx, inp.recording_id, index, t.path.name)
        # Ingest into storage so workers on other hosts read the same bytes; a retry or
        # re-run skips tracks that are already there.
        if not (ctx.storage.exists(key) and ctx.storage.size(key) == t.path.stat().st_size):
            ctx.storage.put_file(key, t.path)
        ctx.progress(index + 1, len(scan.tracks))
        tracks.append(
            TrackRef(
                index=index,
                key=key,
                source_name=t.file,
                participant_id=t.participant_id,
                name=t.name,
                offset_s=round(t.offset_s, 6),
                consent=t.consent,
            )
        )
    duration = max(t.offset_s + t.duration_s for t in scan.tracks)
    return RecordingOut(
        recording_id=inp.recording_id,
        room=scan.room,
        started_at_ms=scan.started_at_ms,
        duration_s=round(duration, 3),
        language=scan.language,
        tracks=tracks,
        warnings=scan.warnings,
    )


def get_participants(inp: GetParticipantsIn, ctx: StageContext) -> ParticipantsOut:
    """Speaker = track index, named from the manifest/file, else `Speaker N` (1-based)."""
    if inp.pipeline.source_kind == "daily":
        return _daily_participants(inp, ctx)
    return ParticipantsOut(
        participants=[
            Participant(
                speaker=t.index,
                participant_id=t.participant_id,
                name=t.name or f"Speaker {t.index + 1}",
                consent=t.consent,
                track_key=t.key,
            )
            for t in inp.recording.tracks
        ]
    )


# --------------------------------------------------------------------------- Daily.co


def checked_offset(label: str, named_s: float, container_s: float) -> tuple[float, str | None]:
    """The key name's offset, with a warning when the container's start time disagrees."""
    named = max(0.0, named_s)
    if container_s >= MIN_CONTAINER_START_S and abs(container_s - named) > OFFSET_TOLERANCE_S:
        return named, (
            f"{label}: key name says offset {named:.3f}s but the container starts at "
            f"{container_s:.3f}s; using the key name"
        )
    return named, None


def _daily_recording(inp: PipelineInput, ctx: StageContext) -> RecordingOut:
    """Look the recording up, stream its speaker tracks into `<rid>/raw/`, probe each one."""
    from reflector_cli.sources import daily, s3  # Daily only: httpx and boto3 cost ~0.1 s

    with daily.client_from_settings(ctx.settings, f"Daily.co recording {inp.source}") as api:
        rec = api.get_recording(inp.source)
    picked = daily.check_ready(rec, inp.include_screen_audio)
    _, warnings = daily.pick_tracks(rec, inp.include_screen_audio)
    assert rec.s3 is not None  # check_ready refuses a recording without a bucket
    bucket = rec.s3.bucket_name
    client = s3.s3_client(ctx.settings, rec.s3.bucket_region)
    tracks: list[TrackRef] = []
    ends: list[float] = []
    for index, t in enumerate(picked):
        key = raw_key(ctx, inp.recording_id, index, PurePosixPath(s3.check_source_key(t.key)).name)
        # Skipped when a retry or re-run finds the same number of bytes already stored.
        s3.download(client, bucket, t.key, ctx.storage, key, t.size)
        with ctx.storage.local_path(key) as path:
            probe = probe_audio(path)
        offset, warning = checked_offset(t.key, t.name.offset_s, probe.start_s)
        if warning:
            warnings.append(warning)
        ends.append(offset + probe.duration_s)
        ctx.progress(index + 1, len(picked))
        tracks.append(
            TrackRef(
                index=index,
                key=key,
                source_name=t.key,
                participant_id=t.name.participant_id,
                offset_s=round(offset, 6),
            )
        )
    for w in warnings:
        log.warning("%s", w)
    # Daily's own duration is the source of truth when it has one (tracks may end early).
    duration = rec.duration if rec.duration is not None else max(ends)
    return RecordingOut(
        recording_id=inp.recording_id,
        room=rec.room_name,
        started_at_ms=rec.start_ms,
        duration_s=round(duration, 3),
        session_id=rec.mtg_session_id,
        tracks=tracks,
        warnings=warnings,
        bucket=bucket,
        source_keys=sorted(t.s3_key for t in rec.tracks),
    )


def _daily_participants(inp: GetParticipantsIn, ctx: StageContext) -> ParticipantsOut:
    """Names from the meeting session's participants; `Speaker N` when Daily cannot say."""
    from reflector_cli.sources import daily

    found: dict[str, daily.DailyParticipant] = {}
    session = inp.recording.session_id
    if not session:
        log.warning(
            "recording %s has no mtgSessionId: speakers are named Speaker N", inp.pipeline.source
        )
    else:
        with daily.client_from_settings(ctx.settings, f"Daily.co session {session}") as api:
            people = api.get_participants(session)
        if people is None:
            log.warning("Daily.co does not know session %s: speakers are named Speaker N", session)
        for p in people or []:
            found.setdefault(p.participant_id, p)
    out: list[Participant] = []
    for t in inp.recording.tracks:
        p = found.get(t.participant_id)
        # Daily's names are the user's own input: bounded like a manifest's.
        name = (p.user_name or "").strip()[:MAX_TEXT] if p else ""
        out.append(
            Participant(
                speaker=t.index,
                participant_id=t.participant_id,
                name=name or f"Speaker {t.index + 1}",
                user_id=p.user_id if p else None,
                consent=t.consent,
                track_key=t.key,
            )
        )
    return ParticipantsOut(participants=out)
