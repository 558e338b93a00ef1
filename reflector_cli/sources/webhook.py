"""Outgoing signed webhooks: `X-Webhook-Signature: t={unix},v1={hex HMAC-SHA256}` and delivery
with bounded exponential backoff through stamina (5xx, 408, 429 and network errors retried,
Retry-After honoured; other 4xx final).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import httpx

from reflector_cli.core.retry import RetryPolicy, TryAgain, retry_after_s
from reflector_cli.core.retry import attempts as retry_attempts
from reflector_cli.core.urls import endpoint_label

USER_AGENT = "Reflector-Webhook/1.0"
# A receiver's Retry-After is honoured, but never beyond this, so the stage stays bounded.
MAX_WAIT_S = 60.0
RETRYABLE_4XX = {408, 429}


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header value for `body` sent at `timestamp` (unix seconds)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify(
    secret: str, header: str, body: bytes, *, now: float | None = None, tolerance_s: float = 300
) -> bool:
    """Check a signature header (for receivers): HMAC matches and the timestamp is fresh."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        ts = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - ts) > tolerance_s:
        return False
    expected = sign(secret, ts, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


@dataclass(frozen=True)
class WebhookResult:
    status: Literal["delivered", "failed"]
    attempts: int
    status_code: int | None
    detail: str


def deliver(
    url: str,
    body: bytes,
    *,
    event: str,
    event_id: str,
    secret: str | None,
    attempts: int = 4,
    backoff_base_s: float = 1.0,
    timeout_s: float = 10.0,
    on_wait: Callable[[float], None] | None = None,
) -> WebhookResult:
    """POST `body` until a 2xx, a final 4xx, or `attempts` tries; never raises for HTTP trouble.

    The body and `event_id` are identical on every attempt so the receiver can deduplicate;
    the signature is recomputed per attempt because its timestamp must be fresh.
    """
    policy = RetryPolicy(max(1, attempts), backoff_base_s, 2.0, MAX_WAIT_S)
    tries = 0

    def note(wait: float, _exc: TryAgain) -> None:
        if on_wait is not None:
            on_wait(wait)

    try:
        with httpx.Client(timeout=timeout_s, follow_redirects=False) as client:
            for attempt in retry_attempts(policy, note):
                with attempt:
                    tries = attempt.num
                    return _post_once(client, url, body, event, event_id, secret, tries)
    except TryAgain as exc:
        detail = f"{exc} (gave up after {tries} attempts)"
        return WebhookResult("failed", tries, exc.status_code, detail)
    raise AssertionError("unreachable")  # pragma: no cover


def _post_once(
    client: httpx.Client,
    url: str,
    body: bytes,
    event: str,
    event_id: str,
    secret: str | None,
    attempt: int,
) -> WebhookResult:
    """One POST: a result when it is final, TryAgain (with the receiver's hint) otherwise."""
    where = endpoint_label(url)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Webhook-Event": event,
        "X-Webhook-Event-Id": event_id,
        "X-Webhook-Retry": str(attempt - 1),
    }
    if secret:
        headers["X-Webhook-Signature"] = sign(secret, int(time.time()), body)
    try:
        resp = client.post(url, content=body, headers=headers)
    except httpx.HTTPError as e:
        # The exception text names only the URL we hold; report the class, not the URL.
        raise TryAgain(f"{where}: {type(e).__name__}") from None
    code = resp.status_code
    if 200 <= code < 300:
        return WebhookResult("delivered", attempt, code, f"{where} answered {code}")
    detail = f"{where} answered {code}"
    if 400 <= code < 500 and code not in RETRYABLE_4XX:
        return WebhookResult("failed", attempt, code, f"{detail} (not retried)")
    hint = retry_after_s(resp.headers.get("retry-after"), cap=MAX_WAIT_S)
    raise TryAgain(detail, hint, code)
