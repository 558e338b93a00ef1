"""A small Zulip REST client (httpx, HTTP basic auth with the bot's email and API key).

Only what delivery needs: post a stream message, edit one. Errors never carry the API key.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from reflector_cli.sources.webhook import backoff_s

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
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url(realm)
        self.attempts = attempts
        self.backoff_base_s = backoff_base_s
        self.sleep = sleep
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
        for attempt in range(1, self.attempts + 1):
            retry_after = None
            try:
                resp = self._http.request(method, path, data=data)
            except httpx.HTTPError as e:
                err = ZulipError(f"Zulip at {self.base_url}: {type(e).__name__}")
            else:
                body = _json(resp)
                if resp.status_code < 400 and body.get("result") == "success":
                    return body
                reason = str(body.get("msg") or resp.reason_phrase)[:200]
                err = ZulipError(
                    f"Zulip at {self.base_url} answered {resp.status_code}: {reason}",
                    resp.status_code,
                )
                if resp.status_code < 500 and resp.status_code != 429:
                    raise err
                retry_after = resp.headers.get("retry-after")
            if attempt == self.attempts:
                raise err
            self.sleep(backoff_s(attempt, self.backoff_base_s, retry_after))
        raise AssertionError("unreachable")  # pragma: no cover

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
