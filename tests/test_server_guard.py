"""`serve` refuses before working: the events token, exact ids, bounded webhook bodies, strict
timestamps, prompt answers to absurd paths, and no secret in any log line (real sockets)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from reflector_cli.core.config import Settings, load_settings
from reflector_cli.intake.server import create_app, sign_daily
from reflector_cli.intake.server_guard import MAX_BODY_BYTES
from reflector_cli.store.repo import Store
from tests.test_server import (
    AUTH,
    SECRET,
    TOKEN,
    Recorder,
    _pipe,
    claims,
    ready_event,
    recv,
    running,
    settings,  # noqa: F401  (fixture)
)


def store_finished(db_path: Path, recording_id: str) -> str:
    """A transcript with one finished run and two events (what a thief would want to read);
    returns its id. Its run id is `r-<recording_id>`."""
    pipe = _pipe(recording_id)
    run_id = f"r-{recording_id}"
    store = Store(db_path)
    store.ensure_recording(pipe)
    store.create_run(run_id, pipe, "local")
    store.add_event(pipe.transcript_id, run_id, "TRANSCRIPT", {"text": "the secret plan"})
    store.add_event(pipe.transcript_id, run_id, "STATUS", {"value": "ended"})
    store.finish_run(run_id, "ended")
    store.close()
    return pipe.transcript_id


@pytest.fixture
def stored(settings: Settings) -> str:  # noqa: F811
    return store_finished(settings.db_path, "rec-secret")


def events_until_closed(
    addr: str, ident: str, query: str = "", headers: dict[str, str] | None = None
) -> list:
    """Everything the server sends before closing, or the HTTP status it refused with."""
    url = f"ws://{addr}/v1/transcripts/{ident}/events{query}"
    got: list = []
    try:
        with connect(url, open_timeout=5, additional_headers=headers or {}) as ws:
            while True:
                got.append(recv(ws))
    except InvalidStatus as exc:
        return [("refused", exc.response.status_code)]
    except ConnectionClosed as exc:
        got.append(("closed", exc.rcvd.code if exc.rcvd else None))
    return got


@pytest.mark.parametrize(
    "headers, query",
    [
        ({}, ""),
        ({"Authorization": "Bearer wrong-token"}, ""),
        ({"Authorization": f"Basic {TOKEN}"}, ""),
        ({"Authorization": f"Bearer {TOKEN[:-1]}"}, ""),
        ({}, "?access_token=wrong"),
        ({}, "?access_token="),
    ],
    ids=["none", "wrong", "basic-scheme", "token-prefix", "query-wrong", "query-empty"],
)
def test_events_without_the_right_token_get_nothing(
    settings: Settings,  # noqa: F811
    stored: str,
    headers: dict[str, str],
    query: str,
) -> None:
    with running(create_app(settings, trigger=Recorder())) as addr:
        assert events_until_closed(addr, stored, query, headers) == [("refused", 403)]


def test_events_with_the_token_in_header_or_query(settings: Settings, stored: str) -> None:  # noqa: F811
    with running(create_app(settings, trigger=Recorder())) as addr:
        for query, headers in (("", AUTH), (f"?access_token={TOKEN}", {})):
            got = events_until_closed(addr, stored, query, headers)
            assert [e["event"] for e in got[:-1]] == ["TRANSCRIPT", "STATUS"]
            assert got[-1] == ("closed", 1000)


@pytest.mark.parametrize("ident", ["_", "%", "%25", "t-", "t-%", "T-", "r", "run-"])
def test_events_ids_match_exactly(settings: Settings, stored: str, ident: str) -> None:  # noqa: F811
    with running(create_app(settings, trigger=Recorder())) as addr:
        assert events_until_closed(addr, ident, "", AUTH) == [("closed", 4404)]


def test_events_id_prefix_is_not_a_match(settings: Settings, stored: str) -> None:  # noqa: F811
    with running(create_app(settings, trigger=Recorder())) as addr:
        assert events_until_closed(addr, stored[:-1], "", AUTH) == [("closed", 4404)]
        # The run id and the recording id are equal-match aliases of the same transcript.
        assert events_until_closed(addr, "r-rec-secret", "", AUTH)[0]["event"] == "TRANSCRIPT"


def test_no_token_configured_closes_the_endpoint(tmp_path: Path, stored: str) -> None:
    bare = load_settings(data_dir=tmp_path / "data", daily_webhook_secret=SECRET)
    with running(create_app(bare, trigger=Recorder())) as addr:
        assert events_until_closed(addr, stored, "", AUTH) == [("refused", 403)]
        assert events_until_closed(addr, stored, "?access_token=", {}) == [("refused", 403)]


@pytest.mark.parametrize("length", [300, 10_000, 60_000])
def test_absurdly_long_paths_are_answered_not_left_hanging(
    settings: Settings,  # noqa: F811
    length: int,
) -> None:
    with running(create_app(settings, trigger=Recorder())) as addr:
        # open_timeout bounds the wait: a hanging server fails this test with TimeoutError.
        got = events_until_closed(addr, "a" * length, "", AUTH)
    assert got in ([("refused", 403)], [("closed", 4404)])


# --------------------------------------------------------------------------- webhook bounds


def raw_post(addr: str, head: str, body_chunks: Iterator[bytes]) -> tuple[bytes, int]:
    """Send a request on a raw socket until the server answers or hangs up; returns the
    answer and how many body bytes we managed to send."""
    host, port = addr.split(":")
    sent = 0
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode())
        try:
            for chunk in body_chunks:
                sock.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = b""
        try:
            while data := sock.recv(65536):
                answer += data
        except ConnectionResetError:
            pass
    return answer, sent


def test_webhook_over_the_limit_by_content_length_is_413_unread(settings: Settings) -> None:  # noqa: F811
    rec = Recorder()
    big = 200 * 1024 * 1024
    head = (
        f"POST /v1/daily/webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {big}\r\n\r\n"
    )
    chunk = b" " * 65536
    with running(create_app(settings, trigger=rec)) as addr:
        answer, sent = raw_post(addr, head, (chunk for _ in range(big // len(chunk))))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 64 * 1024 * 1024  # cut off long before the 200 MB
    assert rec.calls == [] and claims(settings) == []


def test_webhook_streamed_over_the_limit_is_413(settings: Settings) -> None:  # noqa: F811
    rec = Recorder()
    head = (
        "POST /v1/daily/webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    piece = b" " * 65536
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    with running(create_app(settings, trigger=rec)) as addr:
        answer, sent = raw_post(addr, head, (chunk for _ in range(3200)))  # ~200 MB
        # The server is still there for the next, honest delivery.
        body = ready_event()
        stamp = str(int(time.time()))
        ok = httpx.post(
            f"http://{addr}/v1/daily/webhook",
            content=body,
            headers={
                "X-Webhook-Timestamp": stamp,
                "X-Webhook-Signature": sign_daily(SECRET, stamp, body),
            },
        )
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert MAX_BODY_BYTES < sent < 64 * 1024 * 1024
    assert ok.json()["status"] == "started"


@pytest.mark.parametrize(
    "stamp", ["nan", "NaN", "inf", "-inf", "1e10", "-1", "0x10", "1_700_000_000", "12ab"]
)
def test_webhook_timestamp_must_be_plain_digits(settings: Settings, stamp: str) -> None:  # noqa: F811
    rec = Recorder()
    body = ready_event()
    headers = {"X-Webhook-Timestamp": stamp, "X-Webhook-Signature": sign_daily(SECRET, stamp, body)}
    with running(create_app(settings, trigger=rec)) as addr:
        resp = httpx.post(f"http://{addr}/v1/daily/webhook", content=body, headers=headers)
    assert resp.status_code == 401
    assert rec.calls == [] and claims(settings) == []
