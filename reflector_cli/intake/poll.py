"""`reflector poll`: find finished Daily.co raw-tracks recordings by listing them, and start each
one exactly once through the same claim table the webhook uses."""

from __future__ import annotations

import logging
import time

from pydantic import ValidationError

from reflector_cli.core.config import Settings
from reflector_cli.core.errors import PermanentStageError
from reflector_cli.intake.triggers import (
    Trigger,
    fire,
    subprocess_trigger,
    valid_recording_id,
)
from reflector_cli.sources.daily import (
    DailyApiError,
    DailyClient,
    DailyRecording,
    client_from_settings,
)
from reflector_cli.store.repo import Store
from reflector_cli.store.triggers import Triggers

log = logging.getLogger("reflector.poll")


def is_finished_raw_tracks(rec: DailyRecording) -> bool:
    """Daily's list leaves `type` null, so raw-tracks is inferred from a non-empty track list."""
    if rec.status != "finished" or rec.duration is None:
        return False
    return rec.type == "raw-tracks" or (rec.type is None and bool(rec.tracks))


def poll_once(
    settings: Settings,
    trigger: Trigger,
    *,
    max_running: int | None = 2,
    daily: DailyClient | None = None,
) -> list[str]:
    """One discovery pass; returns the recording ids started, oldest first.

    `max_running` caps runs started by triggers that are still alive, so a first poll over a
    long history doesn't launch every recording at once; the rest wait for the next pass."""
    client = daily or client_from_settings(settings, "reflector poll")
    store = Store(settings.db_path)
    try:
        book = Triggers(store)
        # Older pages were seen by an earlier poll once a whole page is known.
        recs = list(
            client.iter_recordings(
                last_page=lambda page: all(book.get(r.id) is not None for r in page)
            )
        )
        ready = [r for r in recs if is_finished_raw_tracks(r) and valid_recording_id(r.id)]
        ready.sort(key=lambda r: (r.start_ts or 0, r.id))
        room = None if max_running is None else max(0, max_running - book.running())
        started: list[str] = []
        for rec in ready:
            if room is not None and len(started) >= room:
                log.info("cap of %d running reached; the rest wait for the next pass", room)
                break
            # The claim decides: unseen, or failed and due for a (bounded) retry.
            if fire(store, rec.id, "poll", trigger):
                started.append(rec.id)
        return started
    finally:
        store.close()
        if daily is None:
            client.close()


def poll(
    settings: Settings,
    once: bool = False,
    interval: float | None = None,
    *,
    trigger: Trigger | None = None,
    max_running: int | None = 2,
    daily: DailyClient | None = None,
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
            new = poll_once(settings, start, max_running=max_running, daily=daily)
        except (DailyApiError, PermanentStageError, ValidationError) as exc:
            # Daily unavailable, or an answer we could not read: the next pass tries again.
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
