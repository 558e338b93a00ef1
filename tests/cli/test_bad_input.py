"""Bad input: exit 1 (2 for usage), one line naming the file and the problem, nothing stored."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.cli.conftest import cli
from tests.conftest import write_track, write_video_only


def _case(kind: str, folder: Path, good: Path) -> tuple[str, str]:
    """Build the bad input; return (argument, text the error must name)."""
    if kind == "missing":
        return str(folder / "nope"), "nope"
    folder.mkdir()
    if kind == "empty":
        (folder / "notes.txt").write_text("no audio here")
        return str(folder), str(folder.name)
    if kind == "zero-length":
        (folder / "alice.wav").write_bytes(b"")
        return str(folder), "alice.wav"
    if kind == "corrupt":
        (folder / "bob.ogg").write_bytes(b"OggS" + bytes(range(256)) * 8)
        return str(folder), "bob.ogg"
    if kind == "video-only":
        write_video_only(folder / "carol.mp4")
        return str(folder), "carol.mp4"
    if kind == "bad-manifest":
        (folder / "alice.wav").write_bytes(good.read_bytes())
        (folder / "recording.json").write_text(json.dumps({"participants": [{"file": "x.wav"}]}))
        return str(folder), "recording.json"
    if kind == "manifest-json":
        (folder / "alice.wav").write_bytes(good.read_bytes())
        (folder / "recording.json").write_text("{not json")
        return str(folder), "recording.json"
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    ["missing", "empty", "zero-length", "corrupt", "video-only", "bad-manifest", "manifest-json"],
)
def test_bad_input_is_one_clear_line_and_stores_nothing(tmp_path: Path, kind: str) -> None:
    good = write_track(tmp_path / "good.wav", 1.0)
    data = tmp_path / "data"
    arg, named = _case(kind, tmp_path / "rec", good)
    res = cli("process", arg, data_dir=data, check=False)
    assert res.returncode == 1, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert named in lines[0] and lines[0].startswith("error:")
    assert "Traceback" not in res.stderr and res.stdout == ""
    db = data / "reflector.sqlite3"
    if db.exists():
        conn = sqlite3.connect(db)
        assert conn.execute("SELECT count(*) FROM recordings").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 0


def test_bad_folder_among_several_leaves_earlier_results(tmp_path: Path) -> None:
    good = tmp_path / "good"
    good.mkdir()
    write_track(good / "alice.wav", 1.5, freq=0)
    res = cli(
        "process",
        str(good),
        str(tmp_path / "missing"),
        "--json",
        data_dir=tmp_path / "d",
        check=False,
    )
    assert res.returncode == 1
    assert "missing" in res.stderr
    shown = cli("runs", "--json", data_dir=tmp_path / "d")
    assert json.loads(shown.stdout)[0]["status"] == "ended"


def test_unknown_transcript_is_a_clear_error(tmp_path: Path) -> None:
    res = cli("show", "t-nothing", data_dir=tmp_path, check=False)
    assert res.returncode == 1 and "Traceback" not in res.stderr
