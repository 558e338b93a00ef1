"""The `triggers` claim table: whoever inserts a recording's row first starts its run.

Each call is one autocommitted statement, so claims are atomic across processes and servers.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

from reflector_cli.store.repo import Store, now_iso


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
