"""Source stages: resolve a recording into ingested tracks, then map tracks to participants.

Only the local-folder source exists so far; a Daily.co recording id fails with a clear message.
"""

from __future__ import annotations

from pathlib import Path

from reflector_cli.context import StageContext
from reflector_cli.errors import UserError
from reflector_cli.models import (
    GetParticipantsIn,
    Participant,
    ParticipantsOut,
    PipelineInput,
    RecordingOut,
    TrackRef,
)
from reflector_cli.sources.folder import scan_folder


def _daily_not_configured(recording: str) -> UserError:
    return UserError(f"Daily.co recording {recording}: the Daily.co source is not configured yet")


def raw_key(ctx: StageContext, recording_id: str, index: int, filename: str) -> str:
    return ctx.key(recording_id, "raw", f"{index}-{filename}")


def get_recording(inp: PipelineInput, ctx: StageContext) -> RecordingOut:
    """Scan and validate the folder, then copy each track into storage under `<rid>/raw/`."""
    if inp.source_kind == "daily":
        raise _daily_not_configured(inp.source)
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
        raise _daily_not_configured(inp.pipeline.source)
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
