"""post_zulip and send_webhook: deliver a finished transcript; skipped when not configured.

Their failures come back as `DeliveryOut(status="failed")` and never flip the transcript to
`error`; secrets (Zulip API key, webhook secret, webhook URL path) never appear in outputs.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Any

from reflector_cli.core.formats import md_escape, speaker_name, speaker_names, to_vtt
from reflector_cli.core.models import DeliveryIn, DeliveryOut, FinalDoc
from reflector_cli.stages.context import StageContext

EVENT = "transcript.completed"
# Zulip refuses messages above 10 000 characters; the long summary is what gets shortened.
ZULIP_MAX_CHARS = 10_000
DEFAULT_TOPIC = "Reflector"


# --------------------------------------------------------------------------- shared helpers


def _load(inp: DeliveryIn, ctx: StageContext) -> tuple[FinalDoc, bytes]:
    raw = ctx.storage.read_bytes(inp.finalize.doc_key)
    return FinalDoc.model_validate_json(raw), raw


def _mmss(seconds: float) -> str:
    s = max(0, int(seconds))
    return f"{s // 60:02d}:{s % 60:02d}"


def _duration(seconds: float) -> str:
    """`h:mm:ss`, without the hour part when it is zero (`4:05`, `1:02:03`)."""
    s = max(0, round(seconds))
    h, m, sec = s // 3600, s % 3600 // 60, s % 60
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


def _fence(text: str) -> str:
    # A summary that itself contains ``` would close our spoiler block early; fence longer.
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


# --------------------------------------------------------------------------- Zulip


def zulip_message(doc: FinalDoc, max_chars: int = ZULIP_MAX_CHARS) -> str:
    """Markdown for Zulip: title, date, duration, id, summary, numbered `[mm:ss]` topics."""
    title = md_escape(doc.title) if doc.title else "Unnamed recording"
    head = [f"# Reflector – {title}", ""]
    if doc.started_at_ms is not None:
        # Zulip renders <time:…> in each reader's own time zone.
        head.append(f"**Date**: <time:{_iso(doc.started_at_ms)}>")
    if doc.room:
        head.append(f"**Room**: {md_escape(doc.room)}")
    head += [
        f"**Duration**: {_duration(doc.duration_s)}",
        f"**Transcript**: `{doc.transcript_id}`",
        "",
    ]
    short = doc.short_summary.strip()
    # The long summary's recap often repeats the short one; say it once.
    if short and short not in doc.long_summary:
        head += [short, ""]
    topics = [f"{i}. [{_mmss(t.start)}] {md_escape(t.title)}" for i, t in enumerate(doc.topics, 1)]
    tail = ["**Topics**", *topics, ""] if topics else []
    tail.append("-----")

    long_summary = doc.long_summary.strip()
    budget = max_chars - len("\n".join(head + tail)) - 40
    if len(long_summary) > budget:
        long_summary = long_summary[: max(0, budget - 20)].rstrip() + "\n\n*(shortened)*"
    body: list[str] = []
    if long_summary:
        fence = _fence(long_summary)
        body = [f"{fence}spoiler Summary", long_summary, fence, ""]
    return "\n".join(head + body + tail)


def _zulip_state_key(ctx: StageContext, recording_id: str) -> str:
    return ctx.key(recording_id, "delivery", "zulip.json")


def _previous_message(ctx: StageContext, key: str, realm: str, stream: str) -> int | None:
    """The message id an earlier run posted, if it was posted to this same realm and stream."""
    if not ctx.storage.exists(key):
        return None
    try:
        state = json.loads(ctx.storage.read_bytes(key))
    except ValueError:
        return None  # a damaged state file only costs a fresh post
    if state.get("realm") != realm or state.get("stream") != stream:
        return None
    mid = state.get("message_id")
    return mid if isinstance(mid, int) else None


def post_zulip(inp: DeliveryIn, ctx: StageContext) -> DeliveryOut:
    if not inp.enabled:
        return DeliveryOut(status="skipped", detail="delivery disabled (--no-deliver)")
    s = ctx.settings
    if not s.zulip_configured or s.zulip_api_key is None:
        return DeliveryOut(status="skipped", detail="Zulip is not configured (ZULIP_REALM …)")
    assert s.zulip_realm and s.zulip_bot_email and s.zulip_stream  # implied by zulip_configured
    # Imported only when needed: httpx and the retry library are ~70 ms on the tail of every
    # run that delivers nothing.
    from reflector_cli.sources.zulip import ZulipClient, ZulipError

    doc, _ = _load(inp, ctx)
    content = zulip_message(doc)
    topic = (s.zulip_topic or doc.title or DEFAULT_TOPIC).strip()[:60]
    state_key = _zulip_state_key(ctx, inp.recording_id)
    client = ZulipClient(
        s.zulip_realm,
        s.zulip_bot_email,
        s.zulip_api_key.get_secret_value(),
        timeout_s=s.delivery_timeout_s,
        attempts=s.delivery_attempts,
        backoff_base_s=s.webhook_backoff_s,
    )
    with client:
        previous = _previous_message(ctx, state_key, client.base_url, s.zulip_stream)
        try:
            if previous is not None and client.update_message(previous, topic, content):
                mid, action = previous, "updated"
            else:
                mid, action = client.post_stream_message(s.zulip_stream, topic, content), "posted"
        except ZulipError as e:
            return DeliveryOut(status="failed", detail=str(e), status_code=e.status_code)
    # Saved right away: the next run edits this message instead of posting a second one.
    state = {"realm": client.base_url, "stream": s.zulip_stream, "topic": topic, "message_id": mid}
    ctx.storage.write_bytes(state_key, json.dumps(state, indent=1).encode())
    return DeliveryOut(
        status="delivered",
        detail=f"{action} message {mid} in #{s.zulip_stream} > {topic}",
        message_id=mid,
        status_code=200,
        attempts=1,
    )


# --------------------------------------------------------------------------- webhook


def event_id(doc: FinalDoc, raw: bytes) -> str:
    """Stable per result: a retry or re-run with the same final document reuses it."""
    content = hashlib.sha256(raw).hexdigest()
    return hashlib.sha256(f"{doc.transcript_id}:{content}".encode()).hexdigest()[:32]


def webhook_payload(doc: FinalDoc, evt_id: str) -> dict[str, Any]:
    """The `transcript.completed` event body (deterministic: no send time inside)."""
    names = speaker_names(doc)
    return {
        "event": EVENT,
        "event_id": evt_id,
        "transcript": {
            "id": doc.transcript_id,
            "recording_id": doc.recording_id,
            "room": doc.room,
            "recorded_at": _iso(doc.started_at_ms),
            "status": "ended",
            "title": doc.title,
            "short_summary": doc.short_summary,
            "long_summary": doc.long_summary,
            "duration_s": doc.duration_s,
            "language": doc.language,
            "participants": [
                {
                    "speaker": p.speaker,
                    "id": p.participant_id,
                    "user_id": p.user_id,
                    "name": speaker_name(names, p.speaker),
                }
                for p in doc.participants
            ],
            "topics": [
                {
                    "title": t.title,
                    "summary": t.summary,
                    "start": t.start,
                    "duration": t.duration,
                    "timestamp": _mmss(t.start),
                }
                for t in doc.topics
            ],
            "action_items": doc.action_items.model_dump(mode="json"),
            "webvtt": to_vtt(doc),
        },
    }


def send_webhook(inp: DeliveryIn, ctx: StageContext) -> DeliveryOut:
    if not inp.enabled:
        return DeliveryOut(status="skipped", detail="delivery disabled (--no-deliver)")
    s = ctx.settings
    if not s.webhook_url:
        return DeliveryOut(status="skipped", detail="WEBHOOK_URL is not set")
    from reflector_cli.sources import webhook  # only when needed, as in post_zulip

    doc, raw = _load(inp, ctx)
    evt_id = event_id(doc, raw)
    body = json.dumps(webhook_payload(doc, evt_id), ensure_ascii=False).encode()
    secret = s.webhook_secret.get_secret_value() if s.webhook_secret else None
    res = webhook.deliver(
        s.webhook_url,
        body,
        event=EVENT,
        event_id=evt_id,
        secret=secret,
        attempts=s.delivery_attempts,
        backoff_base_s=s.webhook_backoff_s,
        timeout_s=s.delivery_timeout_s,
    )
    detail = f"event {evt_id}: {res.detail}" + ("" if secret else " (unsigned: no WEBHOOK_SECRET)")
    record = {
        "event_id": evt_id,
        "status": res.status,
        "status_code": res.status_code,
        "attempts": res.attempts,
    }
    ctx.storage.write_bytes(
        ctx.key(inp.recording_id, "delivery", "webhook.json"), json.dumps(record).encode()
    )
    return DeliveryOut(
        status=res.status, detail=detail, attempts=res.attempts, status_code=res.status_code
    )
