"""A run's lifecycle in a real SQLite store: begin, guard, conclude, attach and reaping."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from reflector_cli.core.config import load_settings
from reflector_cli.core.lock import recording_lock
from reflector_cli.providers.local import RunOutcome
from reflector_cli.store import lifecycle
from reflector_cli.store.lifecycle import INTERRUPTED, KILLED, Lifecycle, reap_interrupted
from reflector_cli.store.repo import Store
from tests.store.test_store import doc, pipe


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "db.sqlite3")
    s.ensure_recording(pipe())
    yield s
    s.close()


def raising(exc: BaseException) -> Any:
    def execute() -> RunOutcome:
        raise exc

    return execute


def statuses(store: Store, run_id: str) -> list[dict[str, Any]]:
    return [
        e["data"]
        for e in store.events("t-rec-1")
        if e["type"] == "STATUS" and e["run_id"] == run_id
    ]


def test_a_failed_run_is_the_transcripts_error(store: Store) -> None:
    lc = Lifecycle.begin(store, pipe(), "local")
    assert store.run(lc.run_id)["status"] == "running"
    assert store.transcript("t-rec-1")["status"] == "processing"
    lc.conclude(RunOutcome("error", "generate_title", "boom"))
    run, t = store.run(lc.run_id), store.transcript("t-rec-1")
    assert (run["status"], run["error_stage"], run["error_message"]) == (
        "error",
        "generate_title",
        "boom",
    )
    assert (t["status"], t["error_stage"], t["error_message"]) == (
        "error",
        "generate_title",
        "boom",
    )
    assert statuses(store, lc.run_id) == [
        {"value": "processing"},
        {"value": "error", "stage": "generate_title", "message": "boom"},
    ]


def test_an_earlier_result_survives_a_failed_run(store: Store) -> None:
    store.commit_final(doc(), "r-earlier")
    lc = Lifecycle.begin(store, pipe(), "local")
    assert store.transcript("t-rec-1")["status"] == "ended"  # never "processing" again
    lc.conclude(RunOutcome("error", "finalize", "boom"))
    assert store.run(lc.run_id)["status"] == "error"
    assert store.transcript("t-rec-1")["status"] == "ended"
    assert statuses(store, lc.run_id)[-1]["value"] == "error"


def test_a_shadow_never_touches_the_transcript(store: Store) -> None:
    lc = Lifecycle.begin(store, pipe(), "hatchet", role="shadow")
    lc.conclude(RunOutcome("error", "generate_title", "boom"))
    assert store.transcript("t-rec-1")["status"] == "idle"
    assert store.run(lc.run_id)["status"] == "error"


def test_an_ended_run_only_ends_its_row(store: Store) -> None:
    lc = Lifecycle.begin(store, pipe(), "local")
    out = lc.run(lambda: RunOutcome("ended"))
    assert out.status == "ended" and store.run(lc.run_id)["status"] == "ended"
    assert [s["value"] for s in statuses(store, lc.run_id)] == ["processing"]


def test_a_stop_interrupts_the_run_and_frees_the_transcript(store: Store) -> None:
    lc = Lifecycle.begin(store, pipe(), "local")
    with pytest.raises(KeyboardInterrupt):
        lc.run(raising(KeyboardInterrupt("SIGTERM")))
    run = store.run(lc.run_id)
    assert (run["status"], run["error_message"]) == (INTERRUPTED, "stopped by SIGTERM")
    assert store.transcript("t-rec-1")["status"] == "idle"
    assert statuses(store, lc.run_id)[-1] == {"value": "idle"}


def test_a_stopped_engine_run_is_left_to_be_followed(store: Store) -> None:
    lc = Lifecycle.begin(store, pipe(), "hatchet")
    store.set_run(lc.run_id, engine_run_id="e-1")
    with pytest.raises(KeyboardInterrupt):
        lc.guard(raising(KeyboardInterrupt()))
    assert store.run(lc.run_id)["status"] == "running"


def test_a_crash_is_recorded_on_run_and_transcript(store: Store) -> None:
    lc = Lifecycle.begin(store, pipe(), "local")
    with pytest.raises(RuntimeError):
        lc.guard(raising(RuntimeError("no broker\nat line 2")))
    run, t = store.run(lc.run_id), store.transcript("t-rec-1")
    assert run["status"] == "error" and run["error_message"].startswith("RuntimeError: no broker")
    assert "\n" not in run["error_message"]
    assert t["status"] == "error" and t["error_stage"] is None


def _refuse_transcript_updates(store: Store) -> None:
    """The transcript's row refuses every update, as a full disk refuses a write (a real
    SQLite failure, from a trigger)."""
    store.conn.execute(
        "CREATE TRIGGER refuse BEFORE UPDATE ON transcripts"
        " BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END"
    )


def test_a_crash_half_recorded_is_not_recorded_at_all(tmp_path: Path, store: Store) -> None:
    """The run's error and its transcript's status land together or not at all: never a run
    marked error beside a transcript still `processing`, which no reaping would ever fix."""
    lc = Lifecycle.begin(store, pipe(), "local")
    _refuse_transcript_updates(store)
    with pytest.raises(RuntimeError):
        lc.guard(raising(RuntimeError("disk full")))
    assert store.run(lc.run_id)["status"] == "running"
    assert store.transcript("t-rec-1")["status"] == "processing"
    store.conn.execute("DROP TRIGGER refuse")  # space freed: the next look reaps both
    assert reap_interrupted(store, load_settings(data_dir=tmp_path), "rec-1") == 1
    assert store.run(lc.run_id)["status"] == INTERRUPTED
    assert store.transcript("t-rec-1")["status"] == "idle"


def test_a_failure_or_interruption_half_recorded_is_not_recorded_at_all(store: Store) -> None:
    lc = Lifecycle.begin(store, pipe(), "local")
    _refuse_transcript_updates(store)
    with pytest.raises(sqlite3.Error, match="full"):
        lc.conclude(RunOutcome("error", "generate_title", "boom"))
    assert store.run(lc.run_id)["status"] == "running"
    with pytest.raises(sqlite3.Error, match="full"):
        lifecycle.mark_interrupted(store, store.run(lc.run_id), KILLED)
    assert store.run(lc.run_id)["status"] == "running"
    assert store.transcript("t-rec-1")["status"] == "processing"


def test_begin_marks_every_run_left_running_killed(store: Store) -> None:
    """The caller holds the lock: a run still `running` (an engine one too) was killed."""
    old = Lifecycle.begin(store, pipe(), "local")
    engine = Lifecycle.begin(store, pipe(), "hatchet")
    store.set_run(engine.run_id, status="running", engine_run_id="e-1")
    store.set_run(old.run_id, status="running")
    new = Lifecycle.begin(store, pipe(), "local")
    for run_id in (old.run_id, engine.run_id):
        run = store.run(run_id)
        assert (run["status"], run["error_message"]) == (INTERRUPTED, KILLED)
    assert store.run(new.run_id)["status"] == "running"


def test_reaping_spares_locked_and_engine_runs(tmp_path: Path, store: Store) -> None:
    settings = load_settings(data_dir=tmp_path)
    gone = Lifecycle.begin(store, pipe(), "local")
    engine = Lifecycle.begin(store, pipe(), "hatchet")
    store.set_run(engine.run_id, engine_run_id="e-1")
    store.set_run(gone.run_id, status="running")
    with recording_lock(settings, "rec-1"):  # someone is at work on the recording
        assert reap_interrupted(store, settings, "rec-1") == 0
    assert reap_interrupted(store, settings, "rec-1") == 1
    assert store.run(gone.run_id)["status"] == INTERRUPTED
    assert store.run(engine.run_id)["status"] == "running"


def test_attach_counts_a_result_of_the_run_itself_as_its_own(store: Store) -> None:
    lc = Lifecycle.begin(store, pipe(), "hatchet")
    store.commit_final(doc(), lc.run_id)  # its finalize committed, then a later stage failed
    again = Lifecycle.attach(store, store.run(lc.run_id))
    assert not again.was_ended
    again.conclude(RunOutcome("error", "post_zulip", "down"))
    assert store.transcript("t-rec-1")["status"] == "error"


def test_prior_finished_needs_an_ended_run_with_the_same_settings(store: Store) -> None:
    lc = Lifecycle.begin(store, pipe(), "local")
    lc.conclude(RunOutcome("ended"))
    store.commit_final(doc(), lc.run_id)
    before = lifecycle.prior(store, pipe())
    assert before.finished(pipe()) and before.result_run == lc.run_id
    assert before.finished(pipe().model_copy(update={"deliver": False}))  # delivery aside
    assert not before.finished(pipe().model_copy(update={"crosstalk": False}))
