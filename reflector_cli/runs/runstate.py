"""Honest run states after a stop: `interrupted` runs, and no transcript left `processing`.

A run stopped by a signal (Ctrl-C, SIGTERM, SIGHUP) is marked `interrupted` by its own process;
one killed outright (SIGKILL, power loss) is found later: `running`, but its recording's lock is
free. Either way the transcript goes back to `idle` (never `processing` with nobody at work),
unless it had already ended, and the finished stages stay for the next run to reuse.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from reflector_cli.core.config import Settings
from reflector_cli.core.lock import lock_if_free
from reflector_cli.store.events import EventSink
from reflector_cli.store.repo import Store

INTERRUPTED = "interrupted"
KILLED = "its process ended before the run finished (killed)"


def mark_interrupted(store: Store, run: dict[str, Any], reason: str) -> None:
    """Record `run` as interrupted; a primary run's transcript stops being `processing`."""
    store.finish_run(str(run["id"]), INTERRUPTED, None, reason)
    tid = run.get("transcript_id")
    if run.get("role", "primary") != "primary" or not tid:
        return
    row = store.transcript(str(tid))
    if row and row["status"] == "processing":
        store.set_status(str(tid), "idle")
        EventSink(store, str(tid), str(run["id"]))("STATUS", {"value": "idle"})


def reap_interrupted(store: Store, settings: Settings, recording_id: str | None = None) -> int:
    """Mark `running` runs whose process is gone (their recording lock is free) interrupted.

    Runs on an engine (Hatchet, with an engine run id) outlive their submitter and are left to
    be followed. Best effort: a read-only data dir just reports what is stored. Returns how
    many runs were marked.
    """
    query = "SELECT * FROM runs WHERE status = 'running' AND engine_run_id IS NULL"
    args: tuple[str, ...] = ()
    if recording_id:
        query, args = query + " AND recording_id = ?", (recording_id,)
    marked = 0
    try:
        for run in store._all(query, args):
            with lock_if_free(settings, str(run["recording_id"])) as free:
                if free:
                    mark_interrupted(store, run, KILLED)
                    marked += 1
    except (sqlite3.OperationalError, OSError):
        pass  # read-only or full: nothing we can fix from here, the listing still works
    return marked
