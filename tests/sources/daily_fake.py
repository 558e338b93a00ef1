"""Fakes for the Daily.co source on 127.0.0.1: a Daily REST API (recordings, paginated meeting
participants with `limit` + `joined_after` and 404 past the end, Bearer auth, injected 429/5xx)
and an S3-compatible bucket server (moto's ThreadedMotoServer)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

API_KEY = "test-daily-key"


@dataclass
class FakeDaily:
    recordings: dict[str, dict[str, Any]] = field(default_factory=dict)
    participants: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # path -> statuses answered (in order) before the real answer, e.g. [429, 503]
    failures: dict[str, list[int]] = field(default_factory=dict)
    retry_after: str | None = "0"
    api_key: str = API_KEY
    requests: list[tuple[str, dict[str, list[str]]]] = field(default_factory=list)
    url: str = ""

    def answer(self, path: str, query: dict[str, list[str]], auth: str) -> tuple[int, Any]:
        self.requests.append((path, query))
        if auth != f"Bearer {self.api_key}":
            return 401, {"error": "authentication-error", "info": "bad API key"}
        pending = self.failures.get(path)
        if pending:
            status = pending.pop(0)
            return status, {"error": "rate-limit" if status == 429 else "server-error"}
        parts = path.strip("/").split("/")
        if parts == ["recordings"]:
            rows = list(self.recordings.values())
            start = 0
            if "starting_after" in query:
                start = [r["id"] for r in rows].index(query["starting_after"][0]) + 1
            page = rows[start : start + int(query.get("limit", ["100"])[0])]
            return 200, {"total_count": len(rows), "data": page}
        if len(parts) == 2 and parts[0] == "recordings":
            rec = self.recordings.get(parts[1])
            return (200, rec) if rec else (404, {"error": "not-found"})
        if len(parts) == 3 and parts[0] == "meetings" and parts[2] == "participants":
            return self._participants(parts[1], query)
        return 404, {"error": "not-found"}

    def _participants(self, session: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        people = self.participants.get(session)
        if people is None:
            return 404, {"error": "not-found"}
        limit = int(query.get("limit", ["100"])[0])
        start = 0
        if "joined_after" in query:
            ids = [p["participant_id"] for p in people]
            start = ids.index(query["joined_after"][0]) + 1
        page = people[start : start + limit]
        # Daily answers 404 once a cursor has run past the last participant.
        return (200, {"data": page}) if page or start == 0 else (404, {"error": "not-found"})


@contextmanager
def serve(fake: FakeDaily) -> Iterator[FakeDaily]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            url = urlsplit(self.path)
            path = url.path.removeprefix("/v1")
            status, body = fake.answer(
                path, parse_qs(url.query), self.headers.get("Authorization", "")
            )
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status == 429 and fake.retry_after is not None:
                self.send_header("Retry-After", fake.retry_after)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def moto_s3() -> Iterator[str]:
    """A real S3 API (moto) on 127.0.0.1; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def track_key(
    pid: str, kind: str, offset_ms: int, rec_start_ms: int = 1732870800000, room: str = "planning"
) -> str:
    """A raw-track key as Daily names them: `{domain}/{room}-{stamp}/{rec}-{pid}-{kind}-{start}`."""
    return f"acme/{room}-20241129090000/{rec_start_ms}-{pid}-{kind}-{rec_start_ms + offset_ms}"


def recording(
    rid: str,
    tracks: list[tuple[str, int | None]],
    session: str | None = "sess-1",
    bucket: str = "daily-raw",
    duration: float | None = None,
    status: str = "finished",
) -> dict[str, Any]:
    """A `GET /recordings/{id}` body; `tracks` are (key, size); video keys get type video."""
    body: dict[str, Any] = {
        "id": rid,
        "room_name": "planning-20241129090000",
        "start_ts": 1732870800.25,  # Daily sometimes sends floats
        "status": status,
        "duration": duration,
        "type": None,  # the API leaves it null
        "s3": {"bucket_name": bucket, "bucket_region": "us-east-1"},
        "tracks": [
            {"type": "video" if "video" in k else "audio", "s3Key": k, "size": size}
            for k, size in tracks
        ],
    }
    if session is not None:
        body["mtgSessionId"] = session
    return body
