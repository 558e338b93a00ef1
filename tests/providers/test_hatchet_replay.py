"""`reflector replay` of a failed Hatchet run: the engine re-runs only the failed task and
its descendants, and the new run commits the transcript like any run."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hatchet_sdk.clients.rest.models.v1_task_status import V1TaskStatus

from reflector_cli.core.config import load_settings
from reflector_cli.providers import hatchet as hp
from reflector_cli.providers.hatchet import common
from reflector_cli.providers.hatchet.follow import HatchetProvider
from reflector_cli.providers.hatchet.mirror import Mirror
from reflector_cli.runs.process import process_recording
from reflector_cli.runs.replay import replay
from reflector_cli.store.repo import Store


def _wait_until_only_one_worker_is_live(timeout_s: float = 60.0) -> None:
    """The engine counts a stopped worker as live for a while and may offer it the replayed
    tasks (a replay does not wait for workers as a new run does); start once it knows."""
    from reflector_cli.providers.hatchet.presence import live_storages

    hatchet = common.client()
    deadline = time.monotonic() + timeout_s
    while len(live_storages(hatchet)) != 1:
        assert time.monotonic() < deadline, "the stopped worker still counts as live"
        time.sleep(0.5)


@pytest.mark.hatchet
@pytest.mark.slow
def test_replay_without_force_reruns_only_the_failed_task_on_the_engine(
    meeting: Path, tmp_path: Path, hatchet_client_env: dict[str, str], start_worker: Callable
) -> None:
    data = tmp_path / "data"
    settings = load_settings(data_dir=data)
    since = datetime.now(UTC) - timedelta(minutes=5)
    faulty = start_worker(data, REFLECTOR_TEST_FAIL="generate_title:5")
    first = process_recording(str(meeting), settings, provider="hatchet")
    assert not first.ok and first.run_id
    faulty.stop()

    healthy = start_worker(data)
    _wait_until_only_one_worker_is_live()
    res = replay(first.run_id, settings)
    assert res.status == "ended", (res.error, healthy.tail())

    store = Store(settings.db_path)
    try:
        old, new = store.run(first.run_id), store.run(res.new_run)
        assert old is not None and new is not None
        assert new["replay_of"] == old["id"] and new["status"] == "ended"
        assert new["engine_run_id"] == old["engine_run_id"]
        transcript = store.transcript(new["transcript_id"])
        assert transcript is not None and transcript["status"] == "ended"
        assert transcript["title"], "no title committed"
        assert store.words(transcript["id"]), "no words committed"
        rows = {(r["stage"], r["track"]): r for r in store.stage_runs(res.new_run)}
        title = rows[("generate_title", None)]
        assert title["status"] == "done" and not title["reused_from"] and title["attempts"] == 1
        assert rows[("finalize", None)]["reused_from"] is None
        tracks = [r for k, r in rows.items() if k[0] == "transcribe_track"]
        assert len(tracks) == 3
        assert all(r["reused_from"] == old["id"] for r in tracks), tracks
        assert rows[("detect_topics", None)]["reused_from"] == old["id"]
    finally:
        store.close()

    # The engine itself ran transcription once: its tasks were never replayed.
    engine = {
        (common.task_name(r), (r.additional_metadata or {}).get("track")): r
        for r in common.list_tasks(hp.client(), first.run_id, since)
    }
    assert [engine[("transcribe_track", str(i))].retry_count for i in range(3)] == [0, 0, 0]
    assert engine[("detect_topics", None)].retry_count == 0
    assert engine[("generate_title", None)].retry_count > 0
    assert "take transcribe_track" not in healthy.tail(100_000)
    assert "take generate_title" in healthy.tail(100_000)


class _Engine:
    """What the follower reads of a replayed run: status, core details, task listing."""

    def __init__(self, retries: dict[str, int]) -> None:
        self.retries = retries
        self.runs = self

    def get_status(self, run_id: str) -> V1TaskStatus:
        return V1TaskStatus.CANCELLED

    def get_details(self, run_id: str) -> Any:
        cancelled = SimpleNamespace(to_v1_task_status=lambda: V1TaskStatus.CANCELLED)
        return SimpleNamespace(done=True, status=cancelled)

    def list(self, **kw: Any) -> Any:
        rows = [
            SimpleNamespace(metadata=SimpleNamespace(id=i), retry_count=n)
            for i, n in self.retries.items()
        ]
        return SimpleNamespace(rows=rows)


def test_a_replay_is_not_over_while_a_replayed_task_waits_for_its_new_attempt() -> None:
    """Between a replayed task's completion and its child's new attempt, the engine reads the
    whole run CANCELLED (the child keeps the old run's CANCELLED until it is queued again)."""
    engine = _Engine({"title": 3, "finalize": 0, "summary": 0})
    prov = HatchetProvider(None, SimpleNamespace(run_id="r-1"), hatchet=engine)
    prov._baseline = {"title": 2, "finalize": 0, "summary": 0}
    prov._replaying = {"title", "finalize"}
    state = Mirror()
    assert prov._settled_status("run", state) == V1TaskStatus.RUNNING
    engine.retries["finalize"] = 1  # queued again, then (say) cancelled again: over
    assert prov._settled_status("run", state) == V1TaskStatus.CANCELLED
