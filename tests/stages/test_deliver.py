"""post_zulip and send_webhook with the real httpx clients against local fakes (and one CLI run)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from reflector_cli.core.config import load_settings
from reflector_cli.core.models import (
    ActionItems,
    DeliveryIn,
    DeliveryOut,
    FinalDoc,
    FinalizeOut,
    NextStep,
    Participant,
    Topic,
    Word,
)
from reflector_cli.sources.webhook import sign, verify
from reflector_cli.sources.zulip import ZulipClient, ZulipError
from reflector_cli.stages.context import StageContext
from reflector_cli.stages.deliver import post_zulip, send_webhook, zulip_message
from reflector_cli.storage import LocalStorage
from tests.stages.delivery_fakes import (
    WEBHOOK_SECRET,
    ZULIP_EMAIL,
    ZULIP_KEY,
    FakeZulip,
    WebhookReceiver,
    webhook_receiver,
    zulip_server,
)

RID = "rec-deliver"
TEXT = "We ship the beta on Friday. Bob writes the notes."
SECRETS = (ZULIP_KEY, WEBHOOK_SECRET, "url-token-xyz")


def make_doc(title: str = "Release plan for the mobile app", **kw: Any) -> FinalDoc:
    words = [
        Word(text=t, start=i * 0.5, end=i * 0.5 + 0.4, speaker=i % 2)
        for i, t in enumerate(TEXT.split(" "))
    ]
    fields: dict[str, Any] = {
        "transcript_id": "t-123",
        "recording_id": RID,
        "title": title,
        "short_summary": "Alice and Bob agreed to ship the beta on Friday.",
        "long_summary": "# Quick recap\nBeta ships Friday.\n\n# Summary\nNotes by Bob.",
        "action_items": ActionItems(next_steps=[NextStep(task="Write notes", assigned_to="Bob")]),
        "duration_s": 754.2,
        "language": "en",
        "participants": [
            Participant(speaker=0, participant_id="p-a", name="Alice", track_key="a"),
            Participant(speaker=1, participant_id="p-b", name="Bob", track_key="b"),
        ],
        "topics": [
            Topic(
                title="Beta date", summary="Friday.", start=0, duration=3, word_start=0, word_end=6
            ),
            Topic(
                title="Notes [draft]",
                summary="Bob.",
                start=125.9,
                duration=2,
                word_start=6,
                word_end=10,
            ),
        ],
        "words": words,
        "waveform": [],
        "audio_key": None,
        "room": "release-planning",
        "started_at_ms": 1732870800000,
    }
    fields.update(kw)
    return FinalDoc(**fields)


def make_ctx(tmp_path: Path, **settings: Any) -> StageContext:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    base: dict[str, Any] = {"data_dir": data, "webhook_backoff_s": 0.01, "delivery_attempts": 3}
    return StageContext(storage=LocalStorage(data), settings=load_settings(**{**base, **settings}))


def put_doc(ctx: StageContext, doc: FinalDoc) -> DeliveryIn:
    key = f"{RID}/final.json"
    ctx.storage.write_bytes(key, doc.model_dump_json().encode())
    fin = FinalizeOut(doc_key=key, word_count=len(doc.words), topic_count=len(doc.topics))
    return DeliveryIn(recording_id=RID, finalize=fin)


def zulip_settings(fake: FakeZulip, **kw: Any) -> dict[str, Any]:
    return {
        "zulip_realm": fake.url,
        "zulip_bot_email": ZULIP_EMAIL,
        "zulip_api_key": ZULIP_KEY,
        "zulip_stream": "meetings",
        "zulip_topic": "Reflector",
        **kw,
    }


def assert_no_secrets(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- skipped


def test_not_configured_or_disabled_is_skipped(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    inp = put_doc(ctx, make_doc())
    assert post_zulip(inp, ctx).status == "skipped"
    assert send_webhook(inp, ctx).status == "skipped"
    with zulip_server() as zulip, webhook_receiver() as hook:
        ctx = make_ctx(tmp_path, webhook_url=hook.url, **zulip_settings(zulip))
        off = inp.model_copy(update={"enabled": False})
        assert post_zulip(off, ctx).status == "skipped"
        assert send_webhook(off, ctx).status == "skipped"
        assert zulip.requests == [] and hook.deliveries == []


def test_skipping_loads_no_http_client(tmp_path: Path) -> None:
    """Most runs deliver nothing; they should not pay for httpx at the end of every run."""
    probe = f"""
import sys
from pathlib import Path
from reflector_cli.core.config import load_settings
from reflector_cli.core.models import DeliveryIn, FinalizeOut
from reflector_cli.stages.context import StageContext
from reflector_cli.stages.deliver import post_zulip, send_webhook
from reflector_cli.storage import LocalStorage
data = Path({str(tmp_path)!r})
ctx = StageContext(storage=LocalStorage(data), settings=load_settings(data_dir=data))
inp = DeliveryIn(recording_id="r", finalize=FinalizeOut(doc_key="r", word_count=0, topic_count=0))
print(post_zulip(inp, ctx).status, send_webhook(inp, ctx).status, "httpx" in sys.modules)
"""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ZULIP_", "WEBHOOK_"))}
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=clean, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["skipped", "skipped", "False"]


# --------------------------------------------------------------------------- Zulip


def test_zulip_posts_then_rerun_edits_the_same_message(tmp_path: Path) -> None:
    with zulip_server() as zulip:
        ctx = make_ctx(tmp_path, **zulip_settings(zulip))
        first = post_zulip(put_doc(ctx, make_doc()), ctx)
        assert first.status == "delivered" and first.message_id is not None
        msg = zulip.messages[first.message_id]
        assert msg["stream"] == "meetings" and msg["topic"] == "Reflector"
        content = msg["content"]
        assert content.startswith("# Reflector – Release plan for the mobile app")
        assert "**Date**: <time:2024-11-29T09:00:00Z>" in content
        assert "**Duration**: 12:34" in content and "`t-123`" in content
        assert "Alice and Bob agreed" in content and "# Quick recap" in content
        assert "1. [00:00] Beta date" in content
        assert "2. [02:05] Notes \\[draft\\]" in content

        second = post_zulip(put_doc(ctx, make_doc(title="Beta ships on Friday")), ctx)
        assert second.status == "delivered" and second.message_id == first.message_id
        assert zulip.methods() == ["POST", "PATCH"]
        assert len(zulip.messages) == 1
        assert "# Reflector – Beta ships on Friday" in zulip.messages[first.message_id]["content"]

        # Same content again: Zulip says "Nothing to change", which is still the same message.
        third = post_zulip(put_doc(ctx, make_doc(title="Beta ships on Friday")), ctx)
        assert third.status == "delivered" and third.message_id == first.message_id
        assert zulip.methods() == ["POST", "PATCH", "PATCH"] and len(zulip.messages) == 1


def test_zulip_posts_anew_when_the_old_message_is_gone(tmp_path: Path) -> None:
    with zulip_server() as zulip:
        ctx = make_ctx(tmp_path, **zulip_settings(zulip))
        inp = put_doc(ctx, make_doc())
        first = post_zulip(inp, ctx)
        assert first.message_id is not None
        del zulip.messages[first.message_id]
        again = post_zulip(inp, ctx)
        assert again.status == "delivered" and again.message_id != first.message_id
        assert zulip.methods() == ["POST", "PATCH", "POST"]
        state = json.loads(ctx.storage.read_bytes(f"{RID}/delivery/zulip.json"))
        assert state["message_id"] == again.message_id
        assert_no_secrets(json.dumps(state))


def test_zulip_retries_server_errors_and_reports_bad_credentials(tmp_path: Path) -> None:
    with zulip_server() as zulip:
        zulip.faults = [503]
        ctx = make_ctx(tmp_path, **zulip_settings(zulip))
        inp = put_doc(ctx, make_doc())
        out = post_zulip(inp, ctx)
        assert out.status == "delivered" and zulip.methods() == ["POST", "POST"]

        bad = make_ctx(tmp_path, **zulip_settings(zulip, zulip_api_key="wrong-key-987"))
        failed = post_zulip(inp, bad)
        assert failed.status == "failed" and failed.status_code == 401
        assert "401" in failed.detail and "Invalid API key" in failed.detail
        assert "wrong-key-987" not in failed.model_dump_json()
        assert_no_secrets(out.model_dump_json(), failed.model_dump_json())
        # The client's own exception names status and reason, never the key.
        client = ZulipClient(zulip.url, ZULIP_EMAIL, "wrong-key-987")
        with client, pytest.raises(ZulipError) as err:
            client.post_stream_message("meetings", "x", "y")
        assert "401" in str(err.value) and "wrong-key-987" not in str(err.value)


def test_zulip_message_keeps_fences_and_the_size_limit() -> None:
    long = "# Summary\n```\ncode\n```\n" + "word " * 5000
    text = zulip_message(make_doc(long_summary=long), max_chars=2000)
    assert len(text) <= 2000
    assert "````spoiler Summary" in text and "*(shortened)*" in text
    assert text.rstrip().endswith("-----") and "2. [02:05]" in text
    bare = zulip_message(make_doc(title=None, started_at_ms=None, topics=[], long_summary=""))
    assert bare.startswith("# Reflector – Unnamed recording") and "Date" not in bare


# --------------------------------------------------------------------------- webhook


def test_webhook_is_signed_and_carries_the_transcript(tmp_path: Path) -> None:
    with webhook_receiver() as hook:
        ctx = make_ctx(tmp_path, webhook_url=hook.url, webhook_secret=WEBHOOK_SECRET)
        out = send_webhook(put_doc(ctx, make_doc()), ctx)
    assert out.status == "delivered" and out.attempts == 1 and out.status_code == 200
    (d,) = hook.deliveries
    assert d.verified
    assert d.headers["x-webhook-event"] == "transcript.completed"
    assert d.headers["x-webhook-retry"] == "0"
    body = d.body
    assert body["event"] == "transcript.completed"
    assert d.headers["x-webhook-event-id"] == body["event_id"]
    t = body["transcript"]
    assert t["id"] == "t-123" and t["title"] == "Release plan for the mobile app"
    assert t["short_summary"].startswith("Alice and Bob") and "# Summary" in t["long_summary"]
    assert t["duration_s"] == 754.2 and t["recorded_at"] == "2024-11-29T09:00:00Z"
    assert [p["name"] for p in t["participants"]] == ["Alice", "Bob"]
    assert [tp["timestamp"] for tp in t["topics"]] == ["00:00", "02:05"]
    assert t["action_items"]["next_steps"][0]["assigned_to"] == "Bob"
    assert t["webvtt"].startswith("WEBVTT") and "<v Alice>" in t["webvtt"]
    assert body["event_id"] in out.detail
    assert_no_secrets(out.model_dump_json())


def test_webhook_retries_5xx_with_the_same_event_id(tmp_path: Path) -> None:
    with webhook_receiver() as hook:
        hook.responses = [500]
        ctx = make_ctx(tmp_path, webhook_url=hook.url, webhook_secret=WEBHOOK_SECRET)
        inp = put_doc(ctx, make_doc())
        out = send_webhook(inp, ctx)
        assert out.status == "delivered" and out.attempts == 2 and out.status_code == 200
        first, second = hook.deliveries
        assert (first.status, second.status) == (500, 200)
        assert first.verified and second.verified
        assert first.body["event_id"] == second.body["event_id"] and first.raw == second.raw
        assert second.headers["x-webhook-retry"] == "1"
        # A re-run with the same result reuses the event id; a different result gets a new one.
        send_webhook(inp, ctx)
        assert hook.deliveries[-1].body["event_id"] == first.body["event_id"]
        send_webhook(put_doc(ctx, make_doc(title="Another title here")), ctx)
        assert hook.deliveries[-1].body["event_id"] != first.body["event_id"]
    record = json.loads(ctx.storage.read_bytes(f"{RID}/delivery/webhook.json"))
    assert record["status"] == "delivered" and record["attempts"] == 1


def test_webhook_4xx_is_final(tmp_path: Path) -> None:
    with webhook_receiver() as hook:
        hook.responses = [400, 200]
        ctx = make_ctx(tmp_path, webhook_url=hook.url, webhook_secret=WEBHOOK_SECRET)
        out = send_webhook(put_doc(ctx, make_doc()), ctx)
    assert out == DeliveryOut(
        status="failed", detail=out.detail, attempts=1, status_code=400, message_id=None
    )
    assert len(hook.deliveries) == 1 and "not retried" in out.detail
    assert_no_secrets(out.model_dump_json())


def test_webhook_wrong_secret_is_rejected_by_the_receiver(tmp_path: Path) -> None:
    with webhook_receiver() as hook:
        ctx = make_ctx(tmp_path, webhook_url=hook.url, webhook_secret="not-the-secret")
        out = send_webhook(put_doc(ctx, make_doc()), ctx)
    assert out.status == "failed" and out.status_code == 401
    assert [d.verified for d in hook.deliveries] == [False]


def test_webhook_unreachable_fails_after_bounded_attempts(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/hooks/reflector?token=url-token-xyz"
    ctx = make_ctx(tmp_path, webhook_url=url, webhook_secret=WEBHOOK_SECRET, delivery_attempts=4)
    t0 = time.monotonic()
    out = send_webhook(put_doc(ctx, make_doc()), ctx)
    assert out.status == "failed" and out.attempts == 4 and out.status_code is None
    assert "ConnectError" in out.detail and "gave up after 4 attempts" in out.detail
    assert time.monotonic() - t0 < 5
    assert_no_secrets(out.model_dump_json())


def test_sign_and_verify_round_trip() -> None:
    body = b'{"event":"x"}'
    now = int(time.time())
    header = sign("k", now, body)
    assert verify("k", header, body)
    assert not verify("k", header, body + b" ")
    assert not verify("other", header, body)
    assert not verify("k", sign("k", now - 3600, body), body)
    receiver = WebhookReceiver(secret="k")  # our signer agrees with the receiver's own check
    assert receiver.verify(header, body)


# --------------------------------------------------------------------------- CLI end to end


def test_cli_process_delivers_to_zulip_and_webhook(tmp_path: Path) -> None:
    from tests.cli.conftest import FIXTURE, cli, cli_json

    with zulip_server() as zulip, webhook_receiver() as hook:
        env = {
            "ZULIP_REALM": zulip.url,
            "ZULIP_BOT_EMAIL": ZULIP_EMAIL,
            "ZULIP_API_KEY": ZULIP_KEY,
            "ZULIP_STREAM": "meetings",
            "ZULIP_TOPIC": "Reflector",
            "WEBHOOK_URL": hook.url,
            "WEBHOOK_SECRET": WEBHOOK_SECRET,
            "REFLECTOR_WEBHOOK_BACKOFF": "0.01",
        }
        data = tmp_path / "data"
        res = cli("process", str(FIXTURE), "--json", data_dir=data, env=env)
        doc = json.loads(res.stdout)
        run = cli_json("runs", "show", doc["run_id"], data_dir=data)
        # A forced re-run edits the same Zulip message and re-sends the same event id.
        cli("process", str(FIXTURE), "--force", "--json", data_dir=data, env=env)
    assert doc["status"] == "ended"
    (msg,) = zulip.messages.values()
    assert doc["title"] in msg["content"] and doc["transcript_id"] in msg["content"]
    assert "1. [00:00]" in msg["content"]
    assert zulip.methods() == ["POST", "PATCH"]
    d, again = hook.deliveries
    assert d.verified and d.status == 200 and again.verified
    assert d.body["transcript"]["id"] == doc["transcript_id"]
    assert d.body["transcript"]["webvtt"].startswith("WEBVTT")
    assert again.body["event_id"] == d.body["event_id"]
    states = {s["stage"]: s["status"] for s in run["stages"]}
    assert states["post_zulip"] == "done" and states["send_webhook"] == "done"
    assert_no_secrets(res.stdout, res.stderr)
