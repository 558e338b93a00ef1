"""Stage view statuses derived from stored rows and outputs; run list filters; durations."""

from __future__ import annotations

import json
from pathlib import Path

from reflector_cli.core import models as m
from reflector_cli.store.repo import Store
from reflector_cli.store.runviews import list_runs, seconds_between, stage_views
from tests.store.test_store import pipe


def delivery(status: str, detail: str = "", attempts: int = 0) -> str:
    out = m.DeliveryOut(status=status, detail=detail, attempts=attempts)  # type: ignore[arg-type]
    return out.model_dump_json()


def stored_run(tmp_path: Path) -> Store:
    s = Store(tmp_path / "db.sqlite3")
    s.ensure_recording(pipe())
    s.create_run("r-aaa", pipe(), "local")
    s.stage_started("r-aaa", "get_recording", None, "h", "v", "{}")
    s.stage_finished("r-aaa", "get_recording", None, "done", output="{}")
    s.stage_finished("r-aaa", "merge_transcripts", None, "done", output="{}", reused_from="r-0")
    s.stage_started("r-aaa", "transcribe_track", 1, "h", "v", "{}")
    s.stage_started("r-aaa", "transcribe_track", 1, "h", "v", "{}")
    s.stage_finished("r-aaa", "transcribe_track", 1, "failed", error="RuntimeError: boom")
    s.stage_finished("r-aaa", "post_zulip", None, "done", output=delivery("skipped", "no Zulip"))
    s.stage_finished(
        "r-aaa", "send_webhook", None, "done", output=delivery("failed", "HTTP 503 after 3", 3)
    )
    s.stage_finished("r-aaa", "cleanup_consent", None, "failed", error="OSError: disk")
    return s


def test_stage_status_is_derived_from_rows_and_outputs(tmp_path: Path) -> None:
    views = {(v["stage"], v["track"]): v for v in stage_views(stored_run(tmp_path), "r-aaa")}
    assert views[("get_recording", None)]["status"] == "done"
    assert views[("merge_transcripts", None)]["status"] == "reused"
    # A main-path stage that failed for good is an error, with its message and attempts.
    t = views[("transcribe_track", 1)]
    assert (t["status"], t["error"], t["attempts"]) == ("error", "RuntimeError: boom", 2)
    assert views[("post_zulip", None)]["status"] == "skipped"
    assert views[("post_zulip", None)]["error"] is None
    assert views[("post_zulip", None)]["detail"] == "no Zulip"
    hook = views[("send_webhook", None)]
    # Its three HTTP attempts happened inside one stage attempt: the view counts them.
    assert (hook["status"], hook["error"], hook["attempts"]) == ("failed", "HTTP 503 after 3", 3)
    # A non-critical stage raising is `failed`, not `error`: the transcript stands.
    assert views[("cleanup_consent", None)]["status"] == "failed"
    assert all(isinstance(v["duration_s"], float) for v in views.values())


def test_seconds_between_store_timestamps() -> None:
    assert seconds_between("2026-12-01T10:00:00.000Z", "2026-12-01T10:01:02.500Z") == 62.5
    assert seconds_between("2026-12-01T10:00:00.000Z", None) is None


def test_list_runs_filters_by_status_provider_and_since(tmp_path: Path) -> None:
    s = Store(tmp_path / "db.sqlite3")
    s.ensure_recording(pipe())
    for rid, provider in (("r-1", "local"), ("r-2", "hatchet"), ("r-3", "hatchet")):
        s.create_run(rid, pipe(), provider)
    s.finish_run("r-1", "ended")
    s.finish_run("r-2", "error", "finalize", "boom")
    s.set_run("r-3", created_at="2020-01-01T00:00:00.000Z")
    assert {r["id"] for r in list_runs(s)} == {"r-1", "r-2", "r-3"}
    assert [r["id"] for r in list_runs(s, status="ended")] == ["r-1"]
    assert {r["id"] for r in list_runs(s, provider="hatchet")} == {"r-2", "r-3"}
    assert {r["id"] for r in list_runs(s, since="2026-01-01T00:00:00.000Z")} == {"r-1", "r-2"}
    one = list_runs(s, status="error")[0]
    assert one["error_stage"] == "finalize" and one["duration_s"] is not None
    assert json.dumps(one)  # plain JSON values only
