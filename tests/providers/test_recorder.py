"""The recorder on a real SQLite store: each stage record applied once, or twice with the
same result (a transport may deliver a record again), and records survive JSON transport."""

from __future__ import annotations

from typing import Any

from reflector_cli.providers.recorder import RECORD, Done, Event, Failed, Recorder, Started
from tests.providers.conftest import RUN

OUT = {"status": "delivered", "detail": "ok", "attempts": 1, "status_code": 200}


def _records() -> list[Any]:
    """A stage that fails once and then finishes, with an event in between."""
    inp = {"recording_id": "rec-1", "enabled": True}
    return [
        Started(stage="send_webhook", attempt=1, input=inp),
        Failed(stage="send_webhook", attempt=1, error="HTTPError: 503", final=False),
        Event(type="PROGRESS_NOTE", data={"note": "retrying"}),
        Started(stage="send_webhook", attempt=2, input=inp),
        Done(stage="send_webhook", attempt=2, output=OUT),
    ]


def _state(r: Recorder) -> tuple[list[tuple[Any, ...]], list[tuple[str, Any]]]:
    rows = [
        (x["stage"], x["track"], x["status"], x["attempts"], x["output_hash"], x["input_hash"])
        for x in r.store.stage_runs(RUN)
    ]
    events = [(e["type"], e["data"]) for e in r.store.events("t-rec-1")]
    for _, data in events:
        data.pop("elapsed_s", None)  # a duration, not a recorded fact
    return rows, events


def test_each_record_applied_twice_changes_nothing(rec: Recorder) -> None:
    for record in _records():
        rec.apply(record)
        once = _state(rec)
        rec.apply(record)
        assert _state(rec) == once, f"{record.kind} applied twice changed the store"
    rows, events = _state(rec)
    assert [r[:4] for r in rows] == [("send_webhook", None, "done", 2)]
    states = [d.get("state") for t, d in events if t == "STAGE"]
    assert states == ["started", "retrying", "started", "done"]
    assert [t for t, _ in events].count("PROGRESS_NOTE") == 1


def test_a_stale_record_does_not_undo_a_later_one(rec: Recorder) -> None:
    records = _records()
    for record in records:
        rec.apply(record)
    after = _state(rec)
    for stale in (records[0], records[1], records[3]):  # an old start, an old failure
        rec.apply(stale)
    assert _state(rec) == after


def test_final_failure_after_a_retry_is_recorded_once(rec: Recorder) -> None:
    inp = {"recording_id": "rec-1", "enabled": True}
    rec.apply(Started(stage="post_zulip", attempt=1, input=inp))
    last = Failed(stage="post_zulip", attempt=1, error="boom", final=True)
    rec.apply(last)
    rec.apply(last)
    rows, events = _state(rec)
    assert [r[:4] for r in rows] == [("post_zulip", None, "failed", 1)]
    assert [d["state"] for t, d in events if t == "STAGE"] == ["started", "failed"]


def test_records_cross_a_json_transport_unchanged() -> None:
    for record in _records():
        assert RECORD.validate_json(record.model_dump_json()) == record
