"""Exactly-once starts for recordings discovered outside the CLI (Daily webhook, `poll`).

Whoever inserts a recording's row in the `triggers` table first starts its run; everyone else
(a redelivered webhook, a poll racing the webhook, a second server) sees the row and does nothing.
Only a run whose process failed may be claimed again, later and a bounded number of times.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from reflector_cli.core.config import Settings
from reflector_cli.store.repo import Store, now_iso

log = logging.getLogger("reflector.triggers")

# Starts processing of one recording id; returns the pid of the process doing it, if any.
Trigger = Callable[[str], int | None]

# Daily ids are UUIDs; anything path-like or option-like must never reach `reflector process`.
_RECORDING_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")


def valid_recording_id(recording_id: str) -> bool:
    return bool(_RECORDING_ID.match(recording_id))


class Triggers:
    """The claim table. Each call is one autocommitted statement, so claims are atomic."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def claim(
        self, recording_id: str, via: str, max_attempts: int = 3, retry_after_s: float = 600
    ) -> bool:
        """True for exactly one caller per recording; a run whose process *failed* may be
        claimed again after `retry_after_s`, at most `max_attempts` times in all (bounded,
        unlike a nightly retry-forever)."""
        ts = now_iso()
        cutoff = (
            (datetime.now(UTC) - timedelta(seconds=retry_after_s))
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z")
        )
        cur = self.store.conn.execute(
            "INSERT INTO triggers (recording_id, via, status, claimed_at, updated_at)"
            " VALUES (?, ?, 'claimed', ?, ?)"
            " ON CONFLICT (recording_id) DO UPDATE SET status = 'claimed', via = excluded.via,"
            " pid = NULL, detail = NULL, attempts = triggers.attempts + 1,"
            " updated_at = excluded.updated_at"
            " WHERE triggers.status = 'failed' AND triggers.attempts < ?"
            " AND triggers.updated_at <= ?",
            (recording_id, via, ts, ts, max_attempts, cutoff),
        )
        return cur.rowcount == 1

    def release(self, recording_id: str) -> None:
        """Give back a claim whose start failed: a first claim is forgotten, so the next
        delivery or poll can try at once; a retry counts as a failed attempt."""
        self.store.conn.execute(
            "DELETE FROM triggers WHERE recording_id = ? AND attempts = 1", (recording_id,)
        )
        self.mark(recording_id, "failed", detail="could not start")

    def mark(
        self, recording_id: str, status: str, pid: int | None = None, detail: str | None = None
    ) -> None:
        self.store.conn.execute(
            "UPDATE triggers SET status = ?, pid = COALESCE(?, pid), detail = ?, updated_at = ?"
            " WHERE recording_id = ?",
            (status, pid, detail, now_iso(), recording_id),
        )

    def started(self, recording_id: str, pid: int | None) -> None:
        # Conditional: a child that already exited (and was reaped) keeps its final status.
        self.store.conn.execute(
            "UPDATE triggers SET status = 'started', pid = COALESCE(?, pid), updated_at = ?"
            " WHERE recording_id = ? AND status = 'claimed'",
            (pid, now_iso(), recording_id),
        )

    def queue(self, recording_id: str) -> None:
        """A claimed run waits for a place (see intake.startqueue); it stays claimed by us."""
        self.store.conn.execute(
            "UPDATE triggers SET status = 'queued', updated_at = ?"
            " WHERE recording_id = ? AND status = 'claimed'",
            (now_iso(), recording_id),
        )

    def queued(self) -> list[str]:
        rows = self.store._all(
            "SELECT recording_id FROM triggers WHERE status = 'queued'"
            " ORDER BY claimed_at, recording_id"
        )
        return [r["recording_id"] for r in rows]

    def take(self, recording_id: str) -> bool:
        """True for exactly one taker of a queued run (two servers on one data dir)."""
        cur = self.store.conn.execute(
            "UPDATE triggers SET status = 'claimed', updated_at = ?"
            " WHERE recording_id = ? AND status = 'queued'",
            (now_iso(), recording_id),
        )
        return cur.rowcount == 1

    def get(self, recording_id: str) -> dict[str, Any] | None:
        return self.store._one("SELECT * FROM triggers WHERE recording_id = ?", (recording_id,))

    def all(self) -> list[dict[str, Any]]:
        return self.store._all("SELECT * FROM triggers ORDER BY claimed_at, recording_id")

    def running(self) -> int:
        """Started runs whose process is still alive on this machine."""
        rows = self.store._all("SELECT pid FROM triggers WHERE status = 'started'")
        return sum(1 for r in rows if r["pid"] and _alive(int(r["pid"])))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def fire(
    store: Store,
    recording_id: str,
    via: str,
    trigger: Trigger,
    *,
    max_attempts: int = 3,
    retry_after_s: float = 600,
) -> bool:
    """Claim `recording_id` and start it; False when it was already claimed.

    A trigger that fails to *start* releases the claim and re-raises (the caller answers 5xx,
    Daily redelivers); what happens to the run afterwards is the run's own business."""
    book = Triggers(store)
    if not book.claim(recording_id, via, max_attempts, retry_after_s):
        return False
    try:
        pid = trigger(recording_id)
    except BaseException:
        book.release(recording_id)
        raise
    book.started(recording_id, pid)
    return True


def subprocess_trigger(settings: Settings) -> Trigger:
    """Run `reflector process <id>` as a detached child, so a crash in it can't take down the
    server; its output goes to `<data_dir>/.triggers/<id>.log`."""
    data_dir = Path(settings.data_dir).resolve()
    logs = data_dir / ".triggers"

    def start(recording_id: str) -> int:
        if not valid_recording_id(recording_id):
            raise ValueError(f"refusing to start unsafe recording id {recording_id!r}")
        logs.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-c",
            "from reflector_cli.cli import main; main()",
            "process",
            "--data-dir",
            str(data_dir),
            "--provider",
            settings.provider,
            "--",
            recording_id,
        ]
        with open(logs / f"{recording_id}.log", "ab") as out:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # our Ctrl-C must not kill a run half way
            )
        log.info("recording %s: started pid %s", recording_id, proc.pid)
        threading.Thread(
            target=_reap, args=(proc, settings.db_path, recording_id), daemon=True
        ).start()
        return proc.pid

    return start


def _reap(proc: subprocess.Popen[bytes], db_path: Path, recording_id: str) -> None:
    rc = proc.wait()
    store = Store(db_path)
    try:
        status = "ended" if rc == 0 else "failed"
        detail = None if rc == 0 else f"exit {rc}"
        Triggers(store).mark(recording_id, status, pid=proc.pid, detail=detail)
    finally:
        store.close()
    log.info("recording %s: process exited %s", recording_id, rc)
