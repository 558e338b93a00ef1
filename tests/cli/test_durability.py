"""Durability and consent on the real pipeline: kill -9 mid-run then resume; consent deletion."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import FIXTURE, REFLECTOR, ROOT, cli, cli_json


def _done_count(db: Path, stage: str) -> int:
    if not db.exists():
        return 0
    try:
        conn = sqlite3.connect(db, timeout=5)
        try:
            return conn.execute(
                "SELECT count(*) FROM stage_runs WHERE stage = ? AND status = 'done'", (stage,)
            ).fetchone()[0]
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return 0  # schema not created yet


@contextlib.contextmanager
def _stalled_receiver() -> Iterator[str]:
    """A webhook URL whose server accepts the connection and never answers: a run reaching
    send_webhook stays alive (its client waits out REFLECTOR_DELIVERY_TIMEOUT), so a kill
    after the last stages before it lands before the run ends, however fast they are."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield f"http://127.0.0.1:{server.getsockname()[1]}/hook"


def _kill_after(data: Path, stage: str) -> None:
    with _stalled_receiver() as hook:
        _start_and_kill(data, stage, {"WEBHOOK_URL": hook, "REFLECTOR_DELIVERY_TIMEOUT": "60"})


def _start_and_kill(data: Path, stage: str, extra_env: dict[str, str]) -> None:
    env = {**os.environ, "REFLECTOR_DATA_DIR": str(data), **extra_env}
    log = open(data.parent / "killed-run.stderr", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [*REFLECTOR, "process", str(FIXTURE), "--json"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    try:
        while _done_count(data / "reflector.sqlite3", stage) < 1:
            if proc.poll() is not None:
                raise AssertionError(
                    "process ended before the kill point: "
                    + (data.parent / "killed-run.stderr").read_text()[-2000:]
                )
            assert time.monotonic() < deadline, f"{stage} never finished"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its pool workers, no cleanup
        proc.wait()
        log.close()


@pytest.mark.parametrize("kill_after", ["transcribe_track", "generate_title", "finalize"])
def test_kill_then_rerun_resumes_and_matches_uninterrupted_run(
    tmp_path: Path, processed: tuple[Path, dict[str, Any]], kill_after: str
) -> None:
    _, reference = processed
    data = tmp_path / "data"
    _kill_after(data, kill_after)
    resumed = cli_json("process", str(FIXTURE), data_dir=data)
    assert resumed["status"] == "ended"
    strip = lambda d: {k: v for k, v in d.items() if k != "run_id"}  # noqa: E731
    assert strip(resumed) == strip(reference)
    runs = cli_json("runs", data_dir=data)
    assert [r["status"] for r in runs] == ["ended", "interrupted"]
    stages = cli_json("runs", "show", resumed["run_id"], data_dir=data)["stages"]
    reused = {(s["stage"], s["track"]) for s in stages if s["reused"]}
    assert ("get_recording", None) in reused
    assert any(name == kill_after for name, _ in reused)
    if kill_after == "generate_title":
        # Everything up to the title came from checkpoints: no transcription was redone.
        assert all(s["reused"] for s in stages if s["stage"] == "transcribe_track")


def test_consent_denied_deletes_our_audio_but_keeps_the_transcript(
    tmp_path: Path, meeting_copy: Path
) -> None:
    manifest = json.loads((meeting_copy / "recording.json").read_text())
    manifest["participants"][1]["consent"] = False
    (meeting_copy / "recording.json").write_text(json.dumps(manifest))
    originals = sorted(p.name for p in meeting_copy.iterdir())
    data = tmp_path / "data"
    doc = cli_json("process", str(meeting_copy), data_dir=data)
    assert doc["status"] == "ended" and doc["word_count"] > 50
    shown = cli_json("show", doc["transcript_id"], data_dir=data)
    assert shown["audio_deleted"] is True
    rec_dir = data / shown["recording_id"]
    audio = [
        p
        for p in rec_dir.rglob("*")
        if p.suffix in {".flac", ".mp3", ".webm", ".ogg", ".wav", ".m4a"}
    ]
    assert audio == []
    assert list(rec_dir.rglob("*.levels.f32")) == []  # drawn from the audio: gone with it
    assert (rec_dir / "transcript.json").exists()
    assert sorted(p.name for p in meeting_copy.iterdir()) == originals
    words = cli_json("export", doc["transcript_id"], "--format", "json", data_dir=data)["words"]
    assert len(words) == doc["word_count"]
    report = cli("export", doc["transcript_id"], "--format", "html", data_dir=data).stdout
    assert "<audio" not in report and "audio was deleted" in report
