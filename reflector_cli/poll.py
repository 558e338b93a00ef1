"""`reflector poll`: find finished Daily.co raw-tracks recordings by listing them, and start each
one exactly once through the same claim table the webhook uses."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

import httpx

from reflector_cli.config import Settings
from reflector_cli.errors import UserError
from reflector_cli.store.repo import Store
from reflector_cli.triggers import Trigger, Triggers, fire, subprocess_trigger, valid_recording_id

log = logging.getLogger("reflector.poll")

DEFAULT_API_URL = "https://api.daily.co/v1"
PAGE = 100  # Daily's maximum page size for GET /recordings


def _daily_api(settings: Settings) -> tuple[str, str]:
    # Until the Daily source lands its settings, fall back to the environment variables.
    url = getattr(settings, "daily_api_url", None) or os.environ.get("DAILY_API_URL")
    key = getattr(settings, "daily_api_key", None) or os.environ.get("DAILY_API_KEY")
    if key is not None and hasattr(key, "get_secret_value"):
        key = key.get_secret_value()
    if not key:
        raise UserError("DAILY_API_KEY is not set: `reflector poll` needs the Daily REST API")
    return str(url or DEFAULT_API_URL).rstrip("/"), str(key)


def list_recordings(
    api_url: str,
    api_key: str,
    *,
    known: Callable[[str], bool] = lambda _id: False,
    max_pages: int = 10,
    client: httpx.Client | None = None,
) -> list[dict[str, Any]]:
    """Recordings newest first, paging back with `starting_after` until a short page, a page
    whose ids are all `known` (older ones were seen by an earlier poll), or `max_pages`."""
    own = client is None
    http = client or httpx.Client(timeout=30)
    out: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": PAGE}
    try:
        for _ in range(max_pages):
            resp = http.get(
                f"{api_url}/recordings",
                params=params,
                headers={"Authorization": f"Bearer {api_key}"},
            )
            if resp.status_code in (401, 403):
                raise UserError(f"Daily API {api_url}: bad API key (HTTP {resp.status_code})")
            resp.raise_for_status()
            page = resp.json().get("data") or []
            out.extend(page)
            if len(page) < PAGE or all(known(str(r.get("id"))) for r in page):
                break
            params["starting_after"] = page[-1]["id"]
    finally:
        if own:
            http.close()
    return out


def is_finished_raw_tracks(rec: dict[str, Any]) -> bool:
    """Daily's list leaves `type` null, so raw-tracks is inferred from a non-empty track list."""
    if rec.get("status") != "finished" or rec.get("duration") is None:
        return False
    kind = rec.get("type")
    return kind == "raw-tracks" or (kind is None and bool(rec.get("tracks")))


def poll_once(
    settings: Settings,
    trigger: Trigger,
    *,
    max_running: int | None = 2,
    client: httpx.Client | None = None,
) -> list[str]:
    """One discovery pass; returns the recording ids started, oldest first.

    `max_running` caps runs started by triggers that are still alive, so a first poll over a
    long history doesn't launch every recording at once; the rest wait for the next pass."""
    api_url, api_key = _daily_api(settings)
    store = Store(settings.db_path)
    try:
        book = Triggers(store)
        recs = list_recordings(
            api_url, api_key, known=lambda rid: book.get(rid) is not None, client=client
        )
        ready = [
            r for r in recs if is_finished_raw_tracks(r) and valid_recording_id(str(r.get("id")))
        ]
        ready.sort(key=lambda r: (r.get("start_ts") or 0, str(r["id"])))
        room = None if max_running is None else max(0, max_running - book.running())
        started: list[str] = []
        for rec in ready:
            if room is not None and len(started) >= room:
                log.info("cap of %d running reached; the rest wait for the next pass", room)
                break
            # The claim decides: unseen, or failed and due for a (bounded) retry.
            if fire(store, str(rec["id"]), "poll", trigger):
                started.append(str(rec["id"]))
        return started
    finally:
        store.close()


def poll(
    settings: Settings,
    once: bool = False,
    interval: float | None = None,
    *,
    trigger: Trigger | None = None,
    max_running: int | None = 2,
    client: httpx.Client | None = None,
) -> list[str]:
    """Poll until interrupted (or one pass with `once`); returns the ids started.

    Default cadence as Daily deployments use it: slow when webhooks are configured (poll is
    only the safety net), fast otherwise. A failing pass is logged and retried next time."""
    start = trigger or subprocess_trigger(settings)
    if interval is None:
        interval = 180.0 if settings.daily_webhook_secret else 15.0
    started: list[str] = []
    while True:
        try:
            new = poll_once(settings, start, max_running=max_running, client=client)
        except (httpx.HTTPError, ValueError) as exc:
            if once:
                raise
            log.warning("poll failed, retrying in %.0f s: %s", interval, exc)
            new = []
        for rid in new:
            log.info("recording %s: started", rid)
        started.extend(new)
        if once:
            return started
        time.sleep(interval)
