"""Folder source: manifest, Daily-style names, container start times, and bad input."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reflector_cli.core.errors import UserError
from reflector_cli.sources.folder import probe_audio, recording_id_for_folder, scan_folder

UUID = "5d1b6c3e-8a41-4c2f-9f7e-2b1f6f0c9a11"
REC_START = 1_700_000_000_000


def daily(kind: str, track_start_ms: int, uuid: str = UUID, ext: str = ".webm") -> str:
    return f"{REC_START}-{uuid}-{kind}-{track_start_ms}{ext}"


def write_manifest(folder: Path, data: object) -> None:
    text = data if isinstance(data, str) else json.dumps(data)
    (folder / "recording.json").write_text(text)


def test_plain_files_sorted_named_by_stem(tmp_path: Path, make_track: Callable[..., Any]) -> None:
    make_track(tmp_path / "zoe.wav", 1.0, sample_rate=16000)
    make_track(tmp_path / "Adam.OGG", 1.5, fmt="ogg")
    (tmp_path / "notes.txt").write_text("not audio")
    scan = scan_folder(tmp_path)
    assert [t.file for t in scan.tracks] == ["Adam.OGG", "zoe.wav"]
    assert [t.name for t in scan.tracks] == ["Adam", "zoe"]
    assert [t.offset_s for t in scan.tracks] == [0.0, 0.0]
    assert scan.tracks[0].duration_s == pytest.approx(1.5, abs=0.03)
    assert scan.tracks[1].duration_s == pytest.approx(1.0, abs=0.01)


def test_manifest_lists_tracks_and_metadata(tmp_path: Path, make_track: Callable[..., Any]) -> None:
    make_track(tmp_path / "a.flac", 1.0)
    make_track(tmp_path / "b.mp3", 1.0)
    make_track(tmp_path / "unlisted.wav", 1.0)
    write_manifest(
        tmp_path,
        {
            "room": "standup",
            "started_at_ms": 1234,
            "language": "fr",
            "participants": [
                {"file": "b.mp3", "participant_id": "u2", "name": "Bea", "offset_s": 4.25},
                {"file": "a.flac", "name": "Al", "consent": False},
            ],
        },
    )
    scan = scan_folder(tmp_path)
    assert (scan.room, scan.started_at_ms, scan.language) == ("standup", 1234, "fr")
    assert [(t.file, t.participant_id, t.name) for t in scan.tracks] == [
        ("a.flac", "a", "Al"),
        ("b.mp3", "u2", "Bea"),
    ]
    assert [t.offset_s for t in scan.tracks] == [0.0, 4.25]
    assert [t.consent for t in scan.tracks] == [False, True]


def test_daily_names_give_participant_and_offset(
    tmp_path: Path, make_track: Callable[..., Any]
) -> None:
    make_track(tmp_path / daily("cam-audio", REC_START + 2500), 1.0)
    other = "0a6f0f5e-0000-4000-8000-000000000002"
    make_track(tmp_path / daily("cam-audio", REC_START, uuid=other, ext=""), 1.0, fmt="webm")
    (tmp_path / daily("cam-video", REC_START)).write_bytes(b"never probed")
    make_track(tmp_path / daily("screen-audio", REC_START + 1000), 1.0)
    scan = scan_folder(tmp_path)
    by_id = {t.participant_id: t for t in scan.tracks}
    assert set(by_id) == {UUID, other}
    assert by_id[UUID].offset_s == 2.5
    assert by_id[other].offset_s == 0.0
    assert by_id[UUID].name is None
    assert scan.started_at_ms == REC_START
    assert any("screen-audio" in w for w in scan.warnings)

    with_screen = scan_folder(tmp_path, include_screen_audio=True)
    assert len(with_screen.tracks) == 3
    assert 1.0 in [t.offset_s for t in with_screen.tracks]


def test_container_start_time_is_the_offset(tmp_path: Path, make_track: Callable[..., Any]) -> None:
    make_track(tmp_path / "late.mka", 1.0, start_time=3.0)
    make_track(tmp_path / "early.mp3", 1.0)  # mp3 priming (~23 ms) is not an offset
    scan = scan_folder(tmp_path)
    offsets = {t.name: t.offset_s for t in scan.tracks}
    assert offsets["late"] == pytest.approx(3.0, abs=0.01)
    assert offsets["early"] == 0.0


def test_name_wins_over_disagreeing_container_start(
    tmp_path: Path, make_track: Callable[..., Any]
) -> None:
    name = daily("cam-audio", REC_START + 1000, ext=".mka")
    make_track(tmp_path / name, 1.0, start_time=3.0)
    scan = scan_folder(tmp_path)
    assert scan.tracks[0].offset_s == 1.0
    assert len(scan.warnings) == 1 and name in scan.warnings[0]


def test_agreeing_container_start_gives_no_warning(
    tmp_path: Path, make_track: Callable[..., Any]
) -> None:
    make_track(tmp_path / daily("cam-audio", REC_START + 3100, ext=".mka"), 1.0, start_time=3.0)
    scan = scan_folder(tmp_path)
    assert scan.tracks[0].offset_s == 3.1 and scan.warnings == []


def _bad_zero(folder: Path, make_video_only: Callable[..., Any]) -> str:
    (folder / "empty.webm").write_bytes(b"")
    return "empty.webm"


def _bad_corrupt(folder: Path, make_video_only: Callable[..., Any]) -> str:
    (folder / "noise.ogg").write_bytes(bytes(range(256)) * 40)
    return "noise.ogg"


def _bad_video(folder: Path, make_video_only: Callable[..., Any]) -> str:
    make_video_only(folder / "screen.mp4")
    return "screen.mp4"


def test_probe_is_remembered_until_the_file_changes(
    tmp_path: Path, make_track: Callable[..., Any]
) -> None:
    track = make_track(tmp_path / "a.wav", 2.0, sample_rate=16000)
    assert probe_audio(track).duration_s == pytest.approx(2.0, abs=0.01)
    # Same inode, size and mtime: the remembered probe answers (the file is not read again,
    # or these bytes would be refused as corrupt).
    st = track.stat()
    track.write_bytes(b"\0" * st.st_size)
    os.utime(track, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert probe_audio(track).duration_s == pytest.approx(2.0, abs=0.01)
    # Any real change (here size and mtime) is measured afresh.
    make_track(track, 3.0, sample_rate=16000)
    assert probe_audio(track).duration_s == pytest.approx(3.0, abs=0.01)
    track.write_bytes(b"\0" * 100)
    with pytest.raises(UserError, match="a.wav"):
        probe_audio(track)


@pytest.mark.parametrize(
    ("make_bad", "problem"),
    [
        (_bad_zero, "zero-length"),
        (_bad_corrupt, "corrupt"),
        (_bad_video, "no audio stream"),
    ],
)
def test_bad_track_names_the_file(
    tmp_path: Path,
    make_bad: Callable[..., str],
    problem: str,
    make_track: Callable[..., Any],
    make_video_only: Callable[..., Any],
) -> None:
    make_track(tmp_path / "good.wav", 0.5)
    bad = make_bad(tmp_path, make_video_only)
    with pytest.raises(UserError) as err:
        scan_folder(tmp_path)
    msg = str(err.value)
    assert bad in msg and problem in msg and "\n" not in msg


def test_missing_path_not_a_dir_and_empty_folder(
    tmp_path: Path, make_track: Callable[..., Any]
) -> None:
    with pytest.raises(UserError, match="nope: no such file"):
        scan_folder(tmp_path / "nope")
    make_track(tmp_path / "one.wav", 0.5)
    with pytest.raises(UserError, match="one.wav: not a directory"):
        scan_folder(tmp_path / "one.wav")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.md").write_text("hi")
    with pytest.raises(UserError, match="empty: no audio files"):
        scan_folder(empty)


@pytest.mark.parametrize(
    ("manifest", "problem"),
    [
        ("{not json", "invalid JSON"),
        ({"participants": [{"file": "ghost.wav"}]}, "'ghost.wav' is not in"),
        ({"participants": [{"file": "a.wav"}, {"file": "a.wav"}]}, "listed twice"),
        ({"participants": [{"file": "a.wav", "offset_s": -1}]}, "offset_s"),
        ({"participants": [{"file": "a.wav", "volume": 3}]}, "volume"),
        ({"participants": []}, "participants"),
        ({"participants": [{"file": "../a.wav"}]}, "participants[0].file '../a.wav': must be"),
        ({"participants": [{"file": "sub/../../a.wav"}]}, "relative path inside the folder"),
        ({"participants": [{"file": "/etc/passwd"}]}, "relative path inside the folder"),
        ({"participants": [{"file": "a\\b.wav"}]}, "relative path inside the folder"),
        ({"participants": [{"file": "."}]}, "relative path inside the folder"),
    ],
)
def test_bad_manifest_names_recording_json(
    tmp_path: Path, manifest: object, problem: str, make_track: Callable[..., Any]
) -> None:
    make_track(tmp_path / "a.wav", 0.5)
    write_manifest(tmp_path, manifest)
    with pytest.raises(UserError) as err:
        scan_folder(tmp_path)
    msg = str(err.value)
    assert "recording.json" in msg and problem in msg and "\n" not in msg


def test_recording_id_depends_on_content_not_location(
    tmp_path: Path, make_track: Callable[..., Any]
) -> None:
    a = tmp_path / "a"
    a.mkdir()
    make_track(a / "x.wav", 0.5)
    (a / "ignored.txt").write_text("notes")
    b = tmp_path / "elsewhere" / "b"
    shutil.copytree(a, b)
    (b / "ignored.txt").write_text("other notes")
    rid = recording_id_for_folder(a)
    assert re.fullmatch(r"rec-[0-9a-f]{16}", rid)
    assert recording_id_for_folder(b) == rid
    make_track(b / "x.wav", 0.5, freq=441)
    assert recording_id_for_folder(b) != rid
    write_manifest(a, {"participants": [{"file": "x.wav", "name": "X"}]})
    assert recording_id_for_folder(a) != rid


def test_manifest_may_name_tracks_in_subfolders(
    tmp_path: Path, make_track: Callable[..., Any]
) -> None:
    (tmp_path / "tracks").mkdir()
    make_track(tmp_path / "tracks" / "alice.wav", 0.5)
    make_track(tmp_path / "tracks" / "bob.wav", 0.5, freq=441)
    write_manifest(
        tmp_path,
        {"participants": [{"file": "tracks/alice.wav", "name": "Alice"},
                          {"file": "./tracks/bob.wav", "name": "Bob"}]},
    )  # fmt: skip
    scan = scan_folder(tmp_path)
    assert [(t.file, t.name) for t in scan.tracks] == [
        ("tracks/alice.wav", "Alice"),
        ("tracks/bob.wav", "Bob"),
    ]
    # The nested bytes are part of the recording's identity.
    rid = recording_id_for_folder(tmp_path)
    make_track(tmp_path / "tracks" / "bob.wav", 0.5, freq=300)
    assert recording_id_for_folder(tmp_path) != rid


def test_manifest_symlink_out_of_the_folder_is_refused(
    tmp_path: Path, make_track: Callable[..., Any]
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    make_track(outside / "secret.wav", 0.5)
    rec = tmp_path / "rec"
    rec.mkdir()
    (rec / "tracks").symlink_to(outside, target_is_directory=True)
    write_manifest(rec, {"participants": [{"file": "tracks/secret.wav"}]})
    with pytest.raises(UserError, match=r"participants\[0\]\.file .*outside the folder"):
        scan_folder(rec)
    # A symlink that stays inside the folder is fine.
    (rec / "real").mkdir()
    make_track(rec / "real" / "a.wav", 0.5)
    (rec / "alias").symlink_to(rec / "real", target_is_directory=True)
    write_manifest(rec, {"participants": [{"file": "alias/a.wav"}]})
    assert [t.file for t in scan_folder(rec).tracks] == ["alias/a.wav"]
