"""The Hatchet provider on a real engine with real worker subprocesses and the real model."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reflector_cli.config import load_settings
from reflector_cli.orchestrate import ProcessResult, process_recording
from reflector_cli.store.repo import Store

pytestmark = [pytest.mark.hatchet, pytest.mark.slow]


def _process(meeting: Path, data_dir: Path, provider: str) -> ProcessResult:
    return process_recording(str(meeting), load_settings(data_dir=data_dir), provider=provider)


def _snapshot(data_dir: Path, res: ProcessResult) -> dict[str, Any]:
    store = Store(data_dir / "reflector.sqlite3")
    try:
        tid = res.view["transcript_id"]
        return {
            "words": [(w["speaker"], w["text"], w["start"], w["end"]) for w in store.words(tid)],
            "speakers": [(p["speaker"], p["name"]) for p in store.participants(tid)],
            "topics": [
                (t["title"], t["summary"], t["start"], t["duration"]) for t in store.topics(tid)
            ],
            "title": res.view["title"],
        }
    finally:
        store.close()


def _run_rows(data_dir: Path, run_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    store = Store(data_dir / "reflector.sqlite3")
    try:
        run = store.run(run_id)
        assert run is not None
        return run, store.stage_runs(run_id)
    finally:
        store.close()


def test_hatchet_gives_the_same_transcript_as_local(
    meeting: Path, tmp_path: Path, hatchet_client_env: dict[str, str], start_worker: Callable
) -> None:
    local_dir, hatchet_dir = tmp_path / "local", tmp_path / "hatchet"
    start_worker(hatchet_dir)
    local = _process(meeting, local_dir, "local")
    assert local.ok, local.error
    remote = _process(meeting, hatchet_dir, "hatchet")
    assert remote.ok, remote.error

    a, b = _snapshot(local_dir, local), _snapshot(hatchet_dir, remote)
    assert b["words"], "no words transcribed through Hatchet"
    assert b == a
    run, stages = _run_rows(hatchet_dir, remote.run_id or "")
    assert run["provider"] == "hatchet" and run["status"] == "ended"
    assert run["engine_run_id"], "engine run id not stored"
    n_tracks = len(b["speakers"])
    per_stage: dict[str, list[dict[str, Any]]] = {}
    for row in stages:
        per_stage.setdefault(row["stage"], []).append(row)
    assert len(per_stage["transcribe_track"]) == n_tracks
    assert len(per_stage["pad_track"]) == n_tracks
    critical = [r for r in stages if r["stage"] not in {"post_zulip", "send_webhook"}]
    assert all(r["status"] == "done" and r["attempts"] == 1 for r in critical), critical


def test_retried_stage_records_attempts_and_run_ends(
    meeting: Path, tmp_path: Path, hatchet_client_env: dict[str, str], start_worker: Callable
) -> None:
    data = tmp_path / "data"
    start_worker(data, REFLECTOR_TEST_FAIL="generate_title:2")
    res = _process(meeting, data, "hatchet")
    assert res.ok, res.error
    run, stages = _run_rows(data, res.run_id or "")
    assert run["status"] == "ended"
    title = next(r for r in stages if r["stage"] == "generate_title")
    assert title["status"] == "done"
    assert title["attempts"] == 3
    others = [r for r in stages if r["stage"] == "detect_topics"]
    assert others and others[0]["attempts"] == 1


def test_worker_killed_mid_transcription_then_restarted_finishes(
    meeting: Path, tmp_path: Path, hatchet_client_env: dict[str, str], start_worker: Callable
) -> None:
    data = tmp_path / "data"
    first = start_worker(data, slots=1)
    box: dict[str, Any] = {}

    def submit() -> None:
        try:
            box["res"] = _process(meeting, data, "hatchet")
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            box["exc"] = exc

    runner = threading.Thread(target=submit, daemon=True)
    runner.start()
    deadline = time.monotonic() + 180
    while "take transcribe_track" not in first.tail(100_000):
        assert time.monotonic() < deadline, f"transcription never started:\n{first.tail()}"
        assert runner.is_alive(), box
        time.sleep(0.2)
    first.kill()
    assert "done transcribe_track" not in first.tail(100_000), "finished before the kill"
    second = start_worker(data, slots=1)
    runner.join(timeout=600)
    assert not runner.is_alive(), f"run did not finish:\n{second.tail()}"
    if "exc" in box:
        raise box["exc"]
    res: ProcessResult = box["res"]
    assert res.ok, f"{res.error}\n{second.tail()}"
    assert res.view["word_count"] > 0
    assert "take transcribe_track" in second.tail(100_000)
    run, stages = _run_rows(data, res.run_id or "")
    assert run["status"] == "ended"
    assert all(r["status"] == "done" for r in stages if r["stage"] == "transcribe_track")
