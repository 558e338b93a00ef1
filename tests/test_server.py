"""`reflector serve` over real sockets: uvicorn on a free 127.0.0.1 port, httpx and websockets
clients; Daily webhooks signed with the real scheme, the claim table in a real SQLite file."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import uvicorn
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from reflector_cli.core import models as m
from reflector_cli.core.config import Settings, load_settings
from reflector_cli.intake.server import create_app, sign_daily, uvicorn_config
from reflector_cli.store.repo import Store
from reflector_cli.store.triggers import Triggers

SECRET = base64.b64encode(b"daily-shared-secret-0123456789").decode()
REC_ID = "4f2b9c1e-6a0d-4e8b-9a51-2d7c3e8f1a60"
TOKEN = "api-token-7c1f0e9a4b2d"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def ready_event(recording_id: str = REC_ID, kind: str = "raw-tracks") -> bytes:
    return json.dumps(
        {
            "version": "1.0.0",
            "type": "recording.ready-to-download",
            "id": "evt-1",
            "event_ts": time.time(),
            "payload": {
                "type": kind,
                "recording_id": recording_id,
                "room_name": "standup-20260301120000",
                "start_ts": 1772366400,
                "status": "finished",
                "duration": 42,
                "tracks": [{"type": "audio", "s3Key": "dom/standup/1-a-cam-audio-1", "size": 9}],
            },
        }
    ).encode()


def signed(body: bytes, secret: str = SECRET, ts: float | None = None) -> dict[str, str]:
    stamp = str(int(time.time() if ts is None else ts))
    return {
        "X-Webhook-Timestamp": stamp,
        "X-Webhook-Signature": sign_daily(secret, stamp, body),
        "Content-Type": "application/json",
    }


class Recorder:
    """A trigger that only remembers what it was asked to start."""

    def __init__(self, fail_first: bool = False) -> None:
        self.calls: list[str] = []
        self.fail_first = fail_first
        self.lock = threading.Lock()

    def __call__(self, recording_id: str) -> None:
        with self.lock:
            self.calls.append(recording_id)
            if self.fail_first and len(self.calls) == 1:
                raise OSError("cannot fork")


@contextlib.contextmanager
def running(app: object) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn_config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(data_dir=tmp_path / "data", daily_webhook_secret=SECRET, api_token=TOKEN)


def claims(settings: Settings) -> list[dict[str, object]]:
    store = Store(settings.db_path)
    try:
        return Triggers(store).all()
    finally:
        store.close()


def test_signed_webhook_starts_once_and_redelivery_is_a_noop(settings: Settings) -> None:
    rec = Recorder()
    with running(create_app(settings, trigger=rec)) as addr:
        url = f"http://{addr}/v1/daily/webhook"
        body = ready_event()
        first = httpx.post(url, content=body, headers=signed(body))
        assert first.status_code == 200
        assert first.json() == {"status": "started", "recording_id": REC_ID}
        again = httpx.post(url, content=body, headers=signed(body))
        assert again.status_code == 200
        assert again.json()["status"] == "duplicate"
    assert rec.calls == [REC_ID]
    [row] = claims(settings)
    assert (row["recording_id"], row["via"], row["status"]) == (REC_ID, "webhook", "started")


def test_concurrent_deliveries_start_one_run(settings: Settings) -> None:
    rec = Recorder()
    body = ready_event()
    with running(create_app(settings, trigger=rec)) as addr:
        url = f"http://{addr}/v1/daily/webhook"
        with ThreadPoolExecutor(8) as pool:
            answers = list(
                pool.map(lambda _: httpx.post(url, content=body, headers=signed(body)), range(8))
            )
    assert all(a.status_code == 200 for a in answers)
    assert sorted(a.json()["status"] for a in answers) == ["duplicate"] * 7 + ["started"]
    assert rec.calls == [REC_ID]


@pytest.mark.parametrize("case", ["tampered", "unsigned", "stale", "future", "wrong-secret"])
def test_bad_deliveries_get_401_and_start_nothing(settings: Settings, case: str) -> None:
    rec = Recorder()
    body = ready_event()
    headers = {
        "tampered": signed(body),
        "unsigned": {"Content-Type": "application/json"},
        "stale": signed(body, ts=time.time() - 6 * 60),
        "future": signed(body, ts=time.time() + 6 * 60),
        "wrong-secret": signed(body, secret=base64.b64encode(b"not the secret").decode()),
    }[case]
    if case == "tampered":
        body = body.replace(REC_ID.encode(), b"00000000-0000-0000-0000-000000000000")
    with running(create_app(settings, trigger=rec)) as addr:
        resp = httpx.post(f"http://{addr}/v1/daily/webhook", content=body, headers=headers)
    assert resp.status_code == 401
    assert rec.calls == []
    assert claims(settings) == []


def test_no_secret_configured_rejects_everything(tmp_path: Path) -> None:
    rec = Recorder()
    bare = load_settings(data_dir=tmp_path / "data")
    body = ready_event()
    with running(create_app(bare, trigger=rec)) as addr:
        resp = httpx.post(f"http://{addr}/v1/daily/webhook", content=body, headers=signed(body))
    assert resp.status_code == 401
    assert rec.calls == []


def test_ping_health_and_ignored_events(settings: Settings) -> None:
    rec = Recorder()
    ping = b'{"test":"test"}'
    cloud = ready_event(kind="cloud")
    evil = ready_event(recording_id="../../etc")
    with running(create_app(settings, trigger=rec)) as addr:
        base = f"http://{addr}"
        assert httpx.post(f"{base}/v1/daily/webhook", content=ping).status_code == 200
        signed_ping = httpx.post(f"{base}/v1/daily/webhook", content=ping, headers=signed(ping))
        assert signed_ping.status_code == 200
        # A ping with a bad signature is still a bad signature.
        forged = signed(ping, secret=base64.b64encode(b"x").decode())
        rejected = httpx.post(f"{base}/v1/daily/webhook", content=ping, headers=forged)
        assert rejected.status_code == 401
        ignored = httpx.post(f"{base}/v1/daily/webhook", content=cloud, headers=signed(cloud))
        assert ignored.json()["status"] == "ignored"
        bad_id = httpx.post(f"{base}/v1/daily/webhook", content=evil, headers=signed(evil))
        assert bad_id.status_code == 422
        health = httpx.get(f"{base}/health")
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert rec.calls == []


def test_failed_start_releases_the_claim(settings: Settings) -> None:
    rec = Recorder(fail_first=True)
    body = ready_event()
    with running(create_app(settings, trigger=rec)) as addr:
        url = f"http://{addr}/v1/daily/webhook"
        assert httpx.post(url, content=body, headers=signed(body)).status_code == 500
        assert claims(settings) == []
        retry = httpx.post(url, content=body, headers=signed(body))
        assert retry.json()["status"] == "started"
    assert rec.calls == [REC_ID, REC_ID]


def test_default_trigger_runs_reflector_process_in_a_child(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No Daily credentials: the child must fail on its own without hurting the server.
    monkeypatch.delenv("DAILY_API_KEY", raising=False)
    monkeypatch.setenv("DAILY_API_URL", "http://127.0.0.1:9")
    body = ready_event()
    with running(create_app(settings)) as addr:
        resp = httpx.post(f"http://{addr}/v1/daily/webhook", content=body, headers=signed(body))
        assert resp.json()["status"] == "started"
        deadline = time.monotonic() + 60
        while (row := claims(settings)[0])["status"] == "started":
            assert time.monotonic() < deadline, "child did not exit"
            time.sleep(0.1)
        assert httpx.get(f"http://{addr}/health").status_code == 200
    assert row["pid"] and row["status"] == "failed"
    assert str(row["detail"]).startswith("exit ")
    log = (Path(settings.data_dir) / ".triggers" / f"{REC_ID}.log").read_text()
    assert REC_ID in log


# --------------------------------------------------------------------------- events WebSocket


def _pipe(recording_id: str) -> m.PipelineInput:
    return m.PipelineInput(
        recording_id=recording_id,
        transcript_id="t-" + recording_id,
        source_kind="folder",
        source="/nowhere",
        asr=m.AsrOptions(model="tiny.en"),
    )


def recv(ws: object, timeout: float = 5.0) -> dict[str, object]:
    return json.loads(ws.recv(timeout=timeout))  # type: ignore[attr-defined]


def test_events_replay_then_live_then_close_after_final_status(settings: Settings) -> None:
    pipe = _pipe("rec-ws")
    store = Store(settings.db_path)
    store.ensure_recording(pipe)
    store.create_run("run-1", pipe, "local")
    store.set_status(pipe.transcript_id, "processing")
    store.add_event(pipe.transcript_id, "run-1", "STATUS", {"value": "processing"})
    store.add_event(pipe.transcript_id, "run-1", "STAGE", {"stage": "get_recording"})
    # A comparison run's events belong to the transcript's table but not to its progress.
    store.create_run("run-shadow", pipe, "hatchet", role="shadow")
    store.add_event(pipe.transcript_id, "run-shadow", "STATUS", {"value": "processing"})
    try:
        with running(create_app(settings, trigger=Recorder())) as addr:
            url = f"ws://{addr}/v1/transcripts/{pipe.transcript_id}/events"
            with connect(url, open_timeout=5, additional_headers=AUTH) as ws:
                replay = [recv(ws), recv(ws)]
                assert [(e["event"], e["data"]) for e in replay] == [
                    ("STATUS", {"value": "processing"}),
                    ("STAGE", {"stage": "get_recording"}),
                ]
                store.add_event(pipe.transcript_id, "run-1", "TRANSCRIPT", {"text": "hello"})
                live = recv(ws)
                assert (live["event"], live["data"]) == ("TRANSCRIPT", {"text": "hello"})
                assert live["id"] > replay[1]["id"]
                store.set_status(pipe.transcript_id, "ended")
                store.add_event(pipe.transcript_id, "run-1", "STATUS", {"value": "ended"})
                assert recv(ws)["data"] == {"value": "ended"}
                # The run still delivers after finalize: its events must reach the client too.
                store.add_event(pipe.transcript_id, "run-1", "STAGE", {"stage": "send_webhook"})
                assert recv(ws)["data"] == {"stage": "send_webhook"}
                with pytest.raises(TimeoutError):
                    ws.recv(timeout=0.6)
                store.finish_run("run-1", "ended")
                with pytest.raises(ConnectionClosed) as closed:
                    ws.recv(timeout=5)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000

            # A finished transcript: everything replayed, then closed.
            with connect(url, open_timeout=5, additional_headers=AUTH) as ws:
                kinds = []
                with pytest.raises(ConnectionClosed):
                    while True:
                        kinds.append(recv(ws)["event"])
                assert kinds == ["STATUS", "STAGE", "TRANSCRIPT", "STATUS", "STAGE"]
    finally:
        store.close()


def test_events_for_unknown_transcript_close_4404(settings: Settings) -> None:
    with (
        running(create_app(settings, trigger=Recorder())) as addr,
        connect(
            f"ws://{addr}/v1/transcripts/t-nope/events", open_timeout=5, additional_headers=AUTH
        ) as ws,
        pytest.raises(ConnectionClosed) as closed,
    ):
        ws.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4404
