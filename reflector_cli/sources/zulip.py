"""A small Zulip REST client (httpx, HTTP basic auth with the bot's email and API key).

Only what delivery needs: post a stream message, edit one. Errors never carry the API key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from reflector_cli.core.retry import (
    MAX_RETRY_AFTER_S,
    RetryPolicy,
    TryAgain,
    attempts,
    retry_after_s,
)
from reflector_cli.core.urls import endpoint_label

# Zulip answers 400 with these `msg` texts when an edit cannot apply to the stored message id;
# a fresh post is then the right move (the message was deleted, or is too old to edit).
_GONE = ("invalid message", "time limit for editing")
# An edit whose content equals the current one is refused with this; for us it is success.
_UNCHANGED = "nothing to change"


class ZulipError(Exception):
    """A request Zulip refused or that never got an answer (message names status and reason)."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class _Retry(TryAgain):
    """A Zulip failure worth another try; `error` is what the caller gets if none is left."""

    def __init__(self, error: ZulipError, wait_s: float | None = None) -> None:
        super().__init__(str(error), wait_s, error.status_code)
        self.error = error


def base_url(realm: str) -> str:
    """`chat.example.com` → `https://chat.example.com`; a realm with a scheme is used as is."""
    realm = realm.strip().rstrip("/")
    return realm if "://" in realm else f"https://{realm}"


class ZulipClient:
    def __init__(
        self,
        realm: str,
        email: str,
        api_key: str,
        *,
        timeout_s: float = 10.0,
        attempts: int = 4,
        backoff_base_s: float = 1.0,
        on_wait: Callable[[float], None] | None = None,
    ) -> None:
        self.base_url = base_url(realm)
        self._where = endpoint_label(self.base_url)  # a configured URL may carry credentials
        self.policy = RetryPolicy(max(1, attempts), backoff_base_s, 2.0, MAX_RETRY_AFTER_S)
        self.on_wait = on_wait
        self._http = httpx.Client(
            base_url=f"{self.base_url}/api/v1",
            auth=(email, api_key),
            timeout=timeout_s,
            headers={"User-Agent": "Reflector/1.0"},
        )

    def __enter__(self) -> ZulipClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, data: dict[str, str]) -> dict[str, Any]:
        """One API call; network errors and 5xx/429 are retried with backoff, 4xx raised."""

        def note(wait: float, _exc: TryAgain) -> None:
            if self.on_wait is not None:
                self.on_wait(wait)

        try:
            for attempt in attempts(self.policy, note):
                with attempt:
                    return self._request_once(method, path, data)
        except _Retry as exc:
            raise exc.error from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _request_once(self, method: str, path: str, data: dict[str, str]) -> dict[str, Any]:
        try:
            resp = self._http.request(method, path, data=data)
        except httpx.HTTPError as e:
            raise _Retry(ZulipError(f"Zulip at {self._where}: {type(e).__name__}")) from None
        body = _json(resp)
        if resp.status_code < 400 and body.get("result") == "success":
            return body
        reason = str(body.get("msg") or resp.reason_phrase)[:200]
        err = ZulipError(
            f"Zulip at {self._where} answered {resp.status_code}: {reason}",
            resp.status_code,
        )
        if resp.status_code < 500 and resp.status_code != 429:
            raise err
        raise _Retry(err, retry_after_s(resp.headers.get("retry-after")))

    def post_stream_message(self, stream: str, topic: str, content: str) -> int:
        body = self._request(
            "POST",
            "/messages",
            {"type": "stream", "to": stream, "topic": topic, "content": content},
        )
        return int(body["id"])

    def update_message(self, message_id: int, topic: str, content: str) -> bool:
        """Edit a message in place; False when it no longer exists (or can't be edited)."""
        try:
            self._request("PATCH", f"/messages/{message_id}", {"topic": topic, "content": content})
        except ZulipError as e:
            text = str(e).lower()
            if _UNCHANGED in text:
                return True
            if e.status_code == 404 or (e.status_code == 400 and any(g in text for g in _GONE)):
                return False
            raise
        return True


def _json(resp: httpx.Response) -> dict[str, Any]:
    try:
        data = resp.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
