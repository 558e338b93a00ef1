"""get_recording / get_participants on real folders: ingest into storage, map speakers."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reflector_cli.core.errors import UserError
from reflector_cli.core.models import AsrOptions, GetParticipantsIn, PipelineInput
from reflector_cli.stages.context import StageContext
from reflector_cli.stages.source import get_participants, get_recording

UUID = "5d1b6c3e-8a41-4c2f-9f7e-2b1f6f0c9a11"


def pipeline(source: Path | str, kind: str = "folder") -> PipelineInput:
    return PipelineInput(
        recording_id="rec-test",
        transcript_id="t-1",
        source_kind=kind,
        source=str(source),
        asr=AsrOptions(model="unused"),
    )


def test_get_recording_ingests_tracks(
    tmp_path: Path, ctx: StageContext, make_track: Callable[..., Any]
) -> None:
    folder = tmp_path / "meeting"
    folder.mkdir()
    make_track(folder / "bob.webm", 2.0)
    make_track(folder / f"1700000000000-{UUID}-cam-audio-1700000001500.ogg", 1.0)
    rec = get_recording(pipeline(folder), ctx)

    keys = [t.key for t in rec.tracks]
    assert keys == [
        f"rec-test/raw/0-1700000000000-{UUID}-cam-audio-1700000001500.ogg",
        "rec-test/raw/1-bob.webm",
    ]
    assert ctx.storage.read_bytes(keys[1]) == (folder / "bob.webm").read_bytes()
    assert [t.index for t in rec.tracks] == [0, 1]
    assert rec.tracks[0].offset_s == 1.5 and rec.tracks[0].participant_id == UUID
    assert rec.duration_s == pytest.approx(2.5, abs=0.03)  # max(1.5 + 1.0, 0 + 2.0)
    assert rec.started_at_ms == 1700000000000

    # A re-run finds the same bytes already stored and does not copy them again.
    path = Path(ctx.storage.describe(keys[1]))
    before = path.stat().st_mtime_ns
    assert get_recording(pipeline(folder), ctx) == rec
    assert path.stat().st_mtime_ns == before


def test_get_recording_bad_input_stores_nothing(
    tmp_path: Path, ctx: StageContext, make_track: Callable[..., Any]
) -> None:
    folder = tmp_path / "meeting"
    folder.mkdir()
    make_track(folder / "a.wav", 0.5)
    (folder / "b.wav").write_bytes(b"")
    with pytest.raises(UserError, match="b.wav: zero-length"):
        get_recording(pipeline(folder), ctx)
    assert ctx.storage.list("rec-test") == []


def test_daily_source_is_not_configured_yet(ctx: StageContext) -> None:
    with pytest.raises(UserError, match="not configured"):
        get_recording(pipeline("abc123", kind="daily"), ctx)


def test_participants_from_manifest_names_and_speaker_n(
    tmp_path: Path, ctx: StageContext, make_track: Callable[..., Any]
) -> None:
    folder = tmp_path / "meeting"
    folder.mkdir()
    make_track(folder / "a.wav", 0.5)
    make_track(folder / f"1700000000000-{UUID}-cam-audio-1700000000000.wav", 0.5)
    (folder / "recording.json").write_text(
        json.dumps(
            {
                "participants": [
                    {"file": "a.wav", "name": "Ada", "consent": False},
                    {"file": f"1700000000000-{UUID}-cam-audio-1700000000000.wav"},
                ]
            }
        )
    )
    p = pipeline(folder)
    rec = get_recording(p, ctx)
    out = get_participants(GetParticipantsIn(pipeline=p, recording=rec), ctx)
    assert [(x.speaker, x.name, x.consent) for x in out.participants] == [
        (0, "Speaker 1", True),
        (1, "Ada", False),
    ]
    assert out.participants[0].participant_id == UUID
    assert [x.track_key for x in out.participants] == [t.key for t in rec.tracks]
