"""`reflector serve`: a small ASGI app that starts runs from Daily.co webhooks and streams a
transcript's progress events over a WebSocket. Processing itself happens elsewhere (a trigger)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import time
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from reflector_cli.core.config import Settings
from reflector_cli.intake.server_guard import (
    MAX_ID_CHARS,
    BodyTooLarge,
    bounded_body,
    install_redaction,
    presented_token,
    token_ok,
)
from reflector_cli.intake.triggers import Trigger, fire, subprocess_trigger, valid_recording_id
from reflector_cli.store.repo import Store
from reflector_cli.store.runviews import primary_running, shadow_run_ids

log = logging.getLogger("reflector.server")

MAX_SKEW_S = 300  # Daily deliveries older (or newer) than this are treated as replays
TEST_PING = {"test": "test"}  # what Daily sends to check an endpoint when a webhook is created
TERMINAL = {"ended", "error"}
# Daily sends integer epoch seconds (or ms); nan, inf, signs and exponents are not timestamps.
_TIMESTAMP = re.compile(r"^\d{1,16}(\.\d{1,9})?$")


# --------------------------------------------------------------------------- Daily signatures


def sign_daily(secret_b64: str, timestamp: str, body: bytes) -> str:
    """Daily's scheme: base64(HMAC-SHA256(base64decode(secret), "{timestamp}.{raw body}"))."""
    key = base64.b64decode(secret_b64)
    digest = hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify_daily(
    secret_b64: str | None,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now: float | None = None,
) -> str | None:
    """None when the delivery is authentic and fresh, else why not (for the log, not the caller)."""
    if not secret_b64:
        return "DAILY_WEBHOOK_SECRET is not set"
    if not timestamp or not signature:
        return "unsigned"
    if not _TIMESTAMP.match(timestamp.strip()):
        return "malformed timestamp"
    try:
        ts = float(timestamp)
        expected = sign_daily(secret_b64, timestamp, body)
    except (ValueError, binascii.Error):
        return "malformed timestamp or secret"
    if ts > 1e12:  # milliseconds, not seconds
        ts /= 1000
    if abs((time.time() if now is None else now) - ts) > MAX_SKEW_S:
        return "stale timestamp"
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        return "bad signature"
    return None


def raw_tracks_recording(event: dict[str, Any]) -> str | None:
    """The recording id of a finished raw-tracks `recording.ready-to-download`, else None."""
    if event.get("type") != "recording.ready-to-download":
        return None
    payload = event.get("payload")
    if not isinstance(payload, dict) or payload.get("type") != "raw-tracks":
        return None
    rid = payload.get("recording_id")
    return rid if isinstance(rid, str) else None


# --------------------------------------------------------------------------- app


def _bounded_subprocesses(settings: Settings) -> Trigger:
    from reflector_cli.intake.startqueue import StartQueue
    from reflector_cli.runs.batch import default_parallel

    limit = settings.parallel or default_parallel(settings.workers)
    return StartQueue(settings, subprocess_trigger(settings), limit)


def create_app(
    settings: Settings, trigger: Trigger | None = None, poll_interval_s: float = 0.2
) -> Starlette:
    """The ASGI app; `trigger` starts processing of a recording id (default: a subprocess,
    at most `--parallel` of them alive at once, the rest queued in order)."""
    start = trigger or _bounded_subprocesses(settings)
    key = settings.daily_webhook_secret
    secret = key.get_secret_value() if key else None
    api_token = settings.api_token.get_secret_value() if settings.api_token else None
    db_path = settings.db_path

    def claim_and_start(recording_id: str) -> bool:
        store = Store(db_path)
        try:
            return fire(store, recording_id, "webhook", start)
        finally:
            store.close()

    async def webhook(request: Request) -> JSONResponse:
        try:
            body = await bounded_body(request)
        except BodyTooLarge:
            log.warning("daily webhook rejected: body over the size limit")
            # Closing the connection stops the client streaming the rest of its body.
            return JSONResponse(
                {"error": "body too large"}, status_code=413, headers={"Connection": "close"}
            )
        ts = request.headers.get("x-webhook-timestamp")
        sig = request.headers.get("x-webhook-signature")
        # Daily pings a new endpoint before it knows to sign; the ping starts nothing. Only a
        # tiny body is parsed unsigned: everything else is authenticated before json.loads.
        if not (ts or sig) and len(body) <= 64 and _json_or_none(body) == TEST_PING:
            return JSONResponse({"status": "ok"})
        problem = verify_daily(secret, ts, sig, body)
        if problem:
            log.warning("daily webhook rejected: %s", problem)
            return JSONResponse({"error": "invalid signature"}, status_code=401)
        event = _json_or_none(body)
        if event == TEST_PING:
            return JSONResponse({"status": "ok"})
        if not isinstance(event, dict):
            return JSONResponse({"error": "body is not a JSON object"}, status_code=422)
        rid = raw_tracks_recording(event)
        if rid is None:
            # Anything else is acknowledged: Daily disables a webhook after repeated non-2xx.
            return JSONResponse({"status": "ignored", "type": event.get("type")})
        if not valid_recording_id(rid):
            return JSONResponse({"error": "invalid recording_id"}, status_code=422)
        try:
            started = await run_in_threadpool(claim_and_start, rid)
        except Exception as exc:  # noqa: BLE001 - claim released; Daily will redeliver
            log.exception("recording %s: could not start", rid)
            return JSONResponse({"error": f"could not start: {exc}"}, status_code=500)
        status = "started" if started else "duplicate"
        log.info("daily webhook: recording %s %s", rid, status)
        return JSONResponse({"status": status, "recording_id": rid})

    async def health(request: Request) -> JSONResponse:
        def check() -> None:
            store = Store(db_path)
            try:
                store.ping()
            finally:
                store.close()

        await run_in_threadpool(check)
        return JSONResponse({"status": "ok"})

    async def events(ws: WebSocket) -> None:
        # Refused before the handshake completes (HTTP 403): nothing is sent, nothing is read.
        if not token_ok(api_token, presented_token(ws.headers, ws.query_params)):
            await ws.close(code=4401)
            return
        ident = ws.path_params["id"]
        if len(ident) > MAX_ID_CHARS:
            await ws.close(code=4414)
            return
        await ws.accept()
        store = await run_in_threadpool(Store, db_path)
        try:
            # Equality only: a prefix, `_` or `%` names no transcript.
            row = await run_in_threadpool(store.find_transcript_exact, ident)
            if row is None:
                await ws.close(code=4404, reason="no such transcript")
                return
            gone = False

            async def watch() -> None:
                nonlocal gone
                while True:  # clients send nothing we need; only their disconnect matters
                    msg = await ws.receive()
                    if msg["type"] == "websocket.disconnect":
                        gone = True
                        tg.cancel_scope.cancel()
                        return

            async with anyio.create_task_group() as tg:
                tg.start_soon(watch)
                try:
                    await _stream(ws, store, row["id"], poll_interval_s)
                except WebSocketDisconnect:
                    gone = True
                tg.cancel_scope.cancel()
            if not gone:
                await ws.close(code=1000)
        finally:
            store.close()

    return Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/v1/daily/webhook", webhook, methods=["POST"]),
            WebSocketRoute("/v1/transcripts/{id}/events", events),
        ]
    )


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _tick(store: Store, transcript_id: str, after: int) -> tuple[list[dict[str, Any]], int, bool]:
    """Primary-run events after `after`, the new cursor, and whether a primary run is going."""
    shadows = shadow_run_ids(store, transcript_id)
    rows = store.events(transcript_id, after)
    cursor = max((int(r["id"]) for r in rows), default=after)
    running = primary_running(store, transcript_id)
    # Shadow (comparison) runs share the transcript id but are not its progress.
    return [r for r in rows if r["run_id"] not in shadows], cursor, running


async def _stream(ws: WebSocket, store: Store, transcript_id: str, interval: float) -> None:
    """Replay stored events, then follow new rows; return once a terminal STATUS was sent and
    no run is left that could append more (delivery events after `ended` are sent too)."""
    after, status = 0, None
    while True:
        rows, after, running = await run_in_threadpool(_tick, store, transcript_id, after)
        for r in rows:
            await ws.send_json(
                {
                    "id": r["id"],
                    "event": r["type"],
                    "data": r["data"],
                    "ts": r["ts"],
                    "run_id": r["run_id"],
                }
            )
            if r["type"] == "STATUS":
                status = r["data"].get("value")
        if status in TERMINAL and not running:
            return
        await anyio.sleep(interval)


def uvicorn_config(app: Starlette, **kw: Any) -> Any:
    """uvicorn on h11 + wsproto: uvicorn's `websockets` handshake answers an over-long request
    line (414) without ever flushing it, leaving the client hanging; h11 answers promptly."""
    import uvicorn

    return uvicorn.Config(
        app, http="h11", ws="wsproto", h11_max_incomplete_event_size=64 * 1024, **kw
    )


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """Run the app under uvicorn until interrupted."""
    import uvicorn

    if settings.daily_webhook_secret is None:
        log.warning("DAILY_WEBHOOK_SECRET is not set: every Daily webhook will be rejected (401)")
    if settings.api_token is None or not settings.api_token.get_secret_value():
        log.warning("REFLECTOR_API_TOKEN is not set: the events WebSocket is closed to everyone")
    config = uvicorn_config(
        create_app(settings),
        host=host or settings.serve_host,
        port=settings.serve_port if port is None else port,
        log_level="info",
    )
    # uvicorn configured its handlers in Config(); filter them so no token reaches a log.
    secrets = [
        s.get_secret_value() for s in (settings.api_token, settings.daily_webhook_secret) if s
    ]
    install_redaction(secrets, ["", "uvicorn", "uvicorn.error", "uvicorn.access"])
    uvicorn.Server(config).run()
