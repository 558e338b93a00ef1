"""`reflector poll` against a fake Daily REST API on 127.0.0.1 (real httpx, real claim table)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from reflector_cli.core.config import Settings, load_settings
from reflector_cli.core.errors import UserError
from reflector_cli.intake.poll import is_finished_raw_tracks, poll, poll_once
from reflector_cli.intake.triggers import fire
from reflector_cli.sources.daily import DailyApiError, DailyClient, DailyRecording
from reflector_cli.store.repo import Store
from reflector_cli.store.triggers import Triggers

# Retries happen for real; stamina skips their waits (they are recorded through on_wait).
pytestmark = pytest.mark.usefixtures("no_retry_waits")

KEY = "daily-key-123"


def rec(rid: str, start_ts: int, **over: Any) -> dict[str, Any]:
    base = {
        "id": rid,
        "room_name": "standup-20260301120000",
        "start_ts": start_ts,
        "status": "finished",
        "duration": 60,
        "type": None,  # Daily's list never fills it in
        "tracks": [{"type": "audio", "s3Key": f"dom/standup/{rid}-cam-audio-1", "size": 10}],
    }
    return base | over


class FakeDaily:
    """GET /recordings, newest first, with `limit` and `starting_after` paging."""

    def __init__(self, server: HTTPServer, recordings: list[dict[str, Any]]) -> None:
        self.recordings = sorted(recordings, key=lambda r: -r["start_ts"])
        self.requests: list[dict[str, str]] = []
        server.expect_request("/recordings", method="GET").respond_with_handler(self.handle)
        self.url = server.url_for("").rstrip("/")

    def handle(self, request: Request) -> Response:
        if request.headers.get("Authorization") != f"Bearer {KEY}":
            return Response(json.dumps({"error": "authentication-error"}), status=401)
        args = dict(request.args)
        self.requests.append(args)
        items = self.recordings
        if "starting_after" in args:
            ids = [r["id"] for r in items]
            items = items[ids.index(args["starting_after"]) + 1 :]
        page = items[: int(args.get("limit", 100))]
        body = {"total_count": len(self.recordings), "data": page}
        return Response(json.dumps(body), content_type="application/json")


class Recorder:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, recording_id: str) -> None:
        self.calls.append(recording_id)


def make_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str) -> Settings:
    monkeypatch.setenv("DAILY_API_URL", url)
    monkeypatch.setenv("DAILY_API_KEY", KEY)
    return load_settings(data_dir=tmp_path / "data")


def test_once_triggers_each_unseen_finished_raw_tracks_recording_once(
    httpserver: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeDaily(
        httpserver,
        [
            rec("rec-b", 2000, type="raw-tracks"),
            rec("rec-a", 1000),
            rec("rec-cloud", 1500, tracks=[], s3key="dom/standup/composed.mp4"),
            rec("rec-live", 3000, status="in-progress", duration=None),
        ],
    )
    settings = make_settings(tmp_path, monkeypatch, fake.url)
    trigger = Recorder()
    assert poll(settings, once=True, trigger=trigger) == ["rec-a", "rec-b"]  # oldest first
    assert poll(settings, once=True, trigger=trigger) == []
    assert trigger.calls == ["rec-a", "rec-b"]
    assert len(fake.requests) == 2 and fake.requests[0]["limit"] == "100"


def test_recording_claimed_by_the_webhook_is_not_started_again(
    httpserver: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeDaily(httpserver, [rec("rec-a", 1000), rec("rec-b", 2000)])
    settings = make_settings(tmp_path, monkeypatch, fake.url)
    webhook, poller = Recorder(), Recorder()
    store = Store(settings.db_path)
    try:
        assert fire(store, "rec-b", "webhook", webhook)
    finally:
        store.close()
    assert poll_once(settings, poller) == ["rec-a"]
    assert (webhook.calls, poller.calls) == (["rec-b"], ["rec-a"])


def test_pages_back_until_a_page_holds_only_known_recordings(
    httpserver: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeDaily(httpserver, [rec(f"rec-{i:03d}", 1000 + i) for i in range(150)])
    settings = make_settings(tmp_path, monkeypatch, fake.url)
    trigger = Recorder()
    started = poll_once(settings, trigger, max_running=None)
    assert started == [f"rec-{i:03d}" for i in range(150)]
    assert [r.get("starting_after") for r in fake.requests] == [None, "rec-050"]
    fake.requests.clear()
    assert poll_once(settings, trigger, max_running=None) == []
    assert len(fake.requests) == 1  # newest page all known: older history not walked again
    assert len(trigger.calls) == 150


def test_running_cap_defers_the_rest_to_a_later_pass(
    httpserver: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeDaily(httpserver, [rec("rec-a", 1000), rec("rec-b", 2000)])
    settings = make_settings(tmp_path, monkeypatch, fake.url)
    procs: list[subprocess.Popen[bytes]] = []

    def sleeper(recording_id: str) -> int:
        # A real child that stays alive, standing in for a long `reflector process`.
        procs.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]))
        return procs[-1].pid

    try:
        assert poll_once(settings, sleeper, max_running=1) == ["rec-a"]
        assert poll_once(settings, sleeper, max_running=1) == []
        procs[0].kill()
        procs[0].wait()
        assert poll_once(settings, sleeper, max_running=1) == ["rec-b"]
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_bad_key_and_server_errors(
    httpserver: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeDaily(httpserver, [rec("rec-a", 1000)])
    settings = make_settings(tmp_path, monkeypatch, fake.url)
    monkeypatch.setenv("DAILY_API_KEY", "wrong")
    with pytest.raises(UserError, match="bad API key"):
        poll(load_settings(data_dir=tmp_path / "data"), once=True, trigger=Recorder())
    httpserver.clear()
    httpserver.expect_request("/recordings").respond_with_data("down", status=503)
    trigger, waits = Recorder(), []
    daily = DailyClient(KEY, fake.url, on_wait=waits.append)
    with pytest.raises(DailyApiError, match="HTTP 503 after 4 attempts"):
        poll(settings, once=True, trigger=trigger, daily=daily)
    assert trigger.calls == [] and waits == [0.5, 1.0, 2.0]


def test_rate_limited_list_is_retried_after_the_hinted_wait(
    httpserver: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    httpserver.expect_ordered_request("/recordings").respond_with_response(
        Response("slow down", status=429, headers={"Retry-After": "7"})
    )
    fake = FakeDaily(httpserver, [rec("rec-a", 1000)])
    settings = make_settings(tmp_path, monkeypatch, fake.url)
    trigger, waits = Recorder(), []
    daily = DailyClient(KEY, fake.url, on_wait=waits.append)
    assert poll(settings, once=True, trigger=trigger, daily=daily) == ["rec-a"]
    assert trigger.calls == ["rec-a"] and waits == [7.0]


def test_raw_tracks_inference() -> None:
    def finished(**over: Any) -> bool:
        return is_finished_raw_tracks(DailyRecording.model_validate(rec("a", 1, **over)))

    assert finished()
    assert finished(type="raw-tracks", tracks=[])
    assert not finished(tracks=[])
    assert not finished(type="cloud")
    assert not finished(duration=None)
    assert not finished(status="in-progress")


def test_failed_run_is_retried_a_bounded_number_of_times(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite3")
    book = Triggers(store)
    trigger = Recorder()
    try:
        assert fire(store, "rec-a", "poll", trigger, retry_after_s=0)
        assert not fire(store, "rec-a", "poll", trigger, retry_after_s=0)  # started: never
        book.mark("rec-a", "ended")
        assert not fire(store, "rec-a", "poll", trigger, retry_after_s=0)  # done: never
        book.mark("rec-a", "failed", detail="exit 1")
        assert not fire(store, "rec-a", "poll", trigger, retry_after_s=3600)  # too soon
        assert fire(store, "rec-a", "poll", trigger, max_attempts=3, retry_after_s=0)
        book.mark("rec-a", "failed", detail="exit 1")
        assert fire(store, "rec-a", "poll", trigger, max_attempts=3, retry_after_s=0)
        book.mark("rec-a", "failed", detail="exit 1")
        assert not fire(store, "rec-a", "poll", trigger, max_attempts=3, retry_after_s=0)
        row = book.get("rec-a")
        assert row is not None and (row["attempts"], row["status"]) == (3, "failed")
        assert trigger.calls == ["rec-a"] * 3
    finally:
        store.close()
