"""A fake Zulip server and a webhook receiver, both real HTTP servers on 127.0.0.1.

The Zulip fake checks basic auth and form fields and keeps messages, so edits can be observed.
The receiver checks `X-Webhook-Signature` with its own HMAC code (independent of ours) and can
be scripted to answer with given status codes first.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

ZULIP_EMAIL = "reflector-bot@zulip.example"
ZULIP_KEY = "zulip-key-s3cr3t-0123456789"
WEBHOOK_SECRET = "whsec-very-secret-abcdef"


@dataclass
class ZulipRequest:
    method: str
    path: str
    form: dict[str, str]
    status: int


@dataclass
class FakeZulip:
    email: str = ZULIP_EMAIL
    api_key: str = ZULIP_KEY
    messages: dict[int, dict[str, str]] = field(default_factory=dict)
    requests: list[ZulipRequest] = field(default_factory=list)
    faults: list[int] = field(default_factory=list)  # status codes served before real answers
    next_id: int = 1000
    url: str = ""

    def answer(
        self, method: str, path: str, auth: str, form: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        expected = "Basic " + base64.b64encode(f"{self.email}:{self.api_key}".encode()).decode()
        if auth != expected:
            return 401, {"result": "error", "msg": "Invalid API key", "code": "UNAUTHORIZED"}
        if self.faults:
            code = self.faults.pop(0)
            return code, {"result": "error", "msg": "Internal server error"}
        if method == "POST" and path == "/api/v1/messages":
            missing = {"type", "to", "topic", "content"} - set(form)
            if missing or form["type"] not in {"stream", "channel"}:
                return 400, {"result": "error", "msg": f"Missing {sorted(missing)}"}
            self.next_id += 1
            self.messages[self.next_id] = {
                "stream": form["to"],
                "topic": form["topic"],
                "content": form["content"],
            }
            return 200, {"result": "success", "msg": "", "id": self.next_id}
        m = re.fullmatch(r"/api/v1/messages/(\d+)", path)
        if method == "PATCH" and m:
            msg = self.messages.get(int(m.group(1)))
            if msg is None:
                return 400, {"result": "error", "msg": "Invalid message(s)", "code": "BAD_REQUEST"}
            new = {k: form[k] for k in ("topic", "content") if k in form}
            if all(msg[k] == v for k, v in new.items()):
                return 400, {"result": "error", "msg": "Nothing to change"}
            msg.update(new)
            return 200, {"result": "success", "msg": ""}
        return 404, {"result": "error", "msg": "Not found"}

    def methods(self) -> list[str]:
        return [r.method for r in self.requests]


@dataclass
class Delivery:
    headers: dict[str, str]
    body: dict[str, Any]
    raw: bytes
    verified: bool
    status: int


@dataclass
class WebhookReceiver:
    secret: str = WEBHOOK_SECRET
    responses: list[int] = field(default_factory=list)  # served in order, then 200
    deliveries: list[Delivery] = field(default_factory=list)
    url: str = ""

    def verify(self, header: str, raw: bytes) -> bool:
        m = re.fullmatch(r"t=(\d+),v1=([0-9a-f]{64})", header or "")
        if not m or abs(time.time() - int(m.group(1))) > 300:
            return False
        mac = hmac.new(self.secret.encode(), m.group(1).encode() + b"." + raw, hashlib.sha256)
        return hmac.compare_digest(mac.hexdigest(), m.group(2))

    def answer(self, headers: dict[str, str], raw: bytes) -> int:
        verified = self.verify(headers.get("x-webhook-signature", ""), raw)
        status = self.responses.pop(0) if self.responses else (200 if verified else 401)
        body = json.loads(raw) if raw else {}
        self.deliveries.append(Delivery(headers, body, raw, verified, status))
        return status

    def delivered(self) -> list[Delivery]:
        return [d for d in self.deliveries if 200 <= d.status < 300]


def _handler(fake: FakeZulip | WebhookReceiver) -> type[BaseHTTPRequestHandler]:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep test output quiet
            pass

        def _read(self) -> bytes:
            return self.rfile.read(int(self.headers.get("content-length") or 0))

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self) -> None:
            raw = self._read()
            with lock:
                if isinstance(fake, WebhookReceiver):
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    status = fake.answer(headers, raw)
                    self._send(status, {"ok": 200 <= status < 300})
                    return
                form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                auth = self.headers.get("authorization", "")
                status, payload = fake.answer(self.command, self.path, auth, form)
                fake.requests.append(ZulipRequest(self.command, self.path, form, status))
            self._send(status, payload)

        do_POST = _handle
        do_PATCH = _handle

    return Handler


@contextmanager
def _serve(fake: FakeZulip | WebhookReceiver, path: str) -> Iterator[None]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.url = f"http://127.0.0.1:{server.server_address[1]}{path}"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextmanager
def zulip_server() -> Iterator[FakeZulip]:
    fake = FakeZulip()
    with _serve(fake, ""):
        yield fake


@contextmanager
def webhook_receiver(secret: str = WEBHOOK_SECRET) -> Iterator[WebhookReceiver]:
    fake = WebhookReceiver(secret=secret)
    with _serve(fake, "/hooks/reflector?token=url-token-xyz"):
        yield fake
