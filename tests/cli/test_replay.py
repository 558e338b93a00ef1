"""`reflector replay`: version lock, --force with a diff, --from STAGE, consent-deleted audio."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from reflector_cli.pipeline.dag import descendants
from tests.cli.conftest import ROOT, cli, cli_json


@pytest.fixture
def data_copy(tmp_path: Path, processed: tuple[Path, dict[str, Any]]) -> tuple[Path, str]:
    """A private copy of the processed data dir, so replays don't disturb other tests."""
    src, doc = processed
    dst = tmp_path / "data"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".locks"))
    return dst, doc["run_id"]


def _edited_package(tmp_path: Path) -> Path:
    """A copy of reflector_cli whose title stage behaves differently (so its version changes)."""
    pkg = tmp_path / "edited"
    shutil.copytree(ROOT / "reflector_cli", pkg / "reflector_cli")
    stage = pkg / "reflector_cli" / "stages" / "llm.py"
    lines = stage.read_text().splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if line.startswith("    title = get_backend("))
    lines.insert(at + 1, '    title = f"Replayed: {title}"\n')
    stage.write_text("".join(lines))
    return pkg


def test_replay_refuses_changed_code_then_force_reports_the_diff(
    tmp_path: Path, data_copy: tuple[Path, str]
) -> None:
    data, run_id = data_copy
    edited = _edited_package(tmp_path)
    env = {"PYTHONPATH": str(edited) + os.pathsep + str(ROOT)}
    refused = cli("replay", run_id, data_dir=data, env=env, check=False, cwd=edited)
    assert refused.returncode == 1
    assert "generate_title" in refused.stderr and "--force" in refused.stderr
    assert "transcribe_track" not in refused.stderr

    res = json.loads(
        cli("replay", run_id, "--force", "--json", data_dir=data, env=env, cwd=edited).stdout
    )
    assert res["status"] == "ended" and res["replay_of"] == run_id
    assert res["changed_code"] == ["generate_title"]
    assert res["diff"]["title"]["changed"] is True
    assert res["diff"]["title"]["new"].startswith("Replayed: ")
    assert res["diff"]["transcript"]["wer"] == 0.0
    stages = cli_json("runs", "show", res["run_id"], data_dir=data)["stages"]
    executed = {s["stage"] for s in stages if not s["reused"]}
    assert executed == {"generate_title"} | descendants("generate_title")
    shown = cli_json("show", res["run_id"], data_dir=data)
    assert shown["title"].startswith("Replayed: ")


def test_replay_from_title_reruns_exactly_title_and_downstream(
    data_copy: tuple[Path, str],
) -> None:
    data, run_id = data_copy
    res = cli_json("replay", run_id, "--from", "generate_title", data_dir=data)
    assert res["status"] == "ended" and res["changed_code"] == []
    assert res["diff"]["title"]["changed"] is False
    stages = cli_json("runs", "show", res["run_id"], data_dir=data)["stages"]
    executed = {s["stage"] for s in stages if not s["reused"]}
    assert executed == {
        "generate_title",
        "finalize",
        "cleanup_consent",
        "post_zulip",
        "send_webhook",
    }
    assert all(s["reused"] for s in stages if s["stage"] == "transcribe_track")


def test_replay_unknown_run_and_unknown_stage(data_copy: tuple[Path, str]) -> None:
    data, run_id = data_copy
    res = cli("replay", "r-nope", data_dir=data, check=False)
    assert res.returncode == 1 and "r-nope" in res.stderr
    res = cli("replay", run_id, "--from", "bogus", data_dir=data, check=False)
    assert res.returncode == 1 and "bogus" in res.stderr


def test_replay_after_consent_deletion_only_replays_text(
    tmp_path: Path, meeting_copy: Path
) -> None:
    manifest = json.loads((meeting_copy / "recording.json").read_text())
    manifest["participants"][0]["consent"] = False
    (meeting_copy / "recording.json").write_text(json.dumps(manifest))
    data = tmp_path / "data"
    doc = cli_json("process", str(meeting_copy), data_dir=data)
    refused = cli("replay", doc["run_id"], "--from", "pad_track", data_dir=data, check=False)
    assert refused.returncode == 1 and "consent" in refused.stderr
    res = cli_json("replay", doc["run_id"], "--from", "detect_topics", data_dir=data)
    assert res["status"] == "ended"
    assert res["diff"]["transcript"]["wer"] == 0.0
    shown = cli_json("show", doc["transcript_id"], data_dir=data)
    assert shown["audio_deleted"] is True and shown["title"] == doc["title"]


def test_a_failed_replay_marks_the_transcript_and_says_so(
    tmp_path: Path, meeting_copy: Path
) -> None:
    """A replay is a run like any other: its failure is the transcript's status and STATUS."""
    from reflector_cli.store.repo import Store

    data = tmp_path / "data"
    failing = {"REFLECTOR_TEST_FAIL": "generate_title:99"}
    first = cli("process", str(meeting_copy), "--json", data_dir=data, env=failing, check=False)
    assert first.returncode == 1
    doc = json.loads(first.stdout)
    assert doc["status"] == "error"
    assert cli_json("show", doc["transcript_id"], data_dir=data)["error_stage"] == "generate_title"

    later = {"REFLECTOR_TEST_FAIL": "finalize:99"}  # the title now works, finalize does not
    res = cli("replay", doc["run_id"], "--json", data_dir=data, env=later, check=False)
    assert res.returncode == 1
    replayed = json.loads(res.stdout)
    assert replayed["status"] == "error" and replayed["error_stage"] == "finalize"
    shown = cli_json("show", doc["transcript_id"], data_dir=data)
    assert shown["status"] == "error" and shown["error_stage"] == "finalize"
    store = Store(data / "reflector.sqlite3", readonly=True)
    try:
        statuses = [
            e["data"]
            for e in store.events(doc["transcript_id"])
            if e["type"] == "STATUS" and e["run_id"] == replayed["run_id"]
        ]
    finally:
        store.close()
    assert [s["value"] for s in statuses] == ["processing", "error"]
    assert statuses[-1]["stage"] == "finalize"
