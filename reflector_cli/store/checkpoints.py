"""Stage-run rows as the recorder applies them: one row per (run, stage, track), read back by
the recorder to make applying a record twice change nothing."""

from __future__ import annotations

from typing import Any

from reflector_cli.store.repo import Store, _track_col, now_iso


def stage_row(store: Store, run_id: str, stage: str, track: int | None) -> dict[str, Any] | None:
    """The stage's row in this run (status, attempts, output, ...), None before its first start."""
    return store._one(
        "SELECT * FROM stage_runs WHERE run_id = ? AND stage = ? AND track = ?",
        (run_id, stage, _track_col(track)),
    )


def stage_attempts(store: Store, run_id: str, stage: str, track: int | None) -> int:
    row = stage_row(store, run_id, stage, track)
    return int(row["attempts"]) if row else 0


def attempt_started(
    store: Store,
    run_id: str,
    stage: str,
    track: int | None,
    attempt: int,
    *,
    input_hash: str,
    code_version: str,
    inp: str,
) -> bool:
    """Record attempt number `attempt` as running; False (and nothing written) when the row
    already counts that many attempts, so a repeated or stale start changes nothing."""
    cur = store.conn.execute(
        "INSERT INTO stage_runs (run_id, stage, track, status, attempts, input_hash,"
        " code_version, input, started_at) VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?)"
        " ON CONFLICT (run_id, stage, track) DO UPDATE SET status = 'running',"
        " attempts = excluded.attempts, error = NULL"
        " WHERE stage_runs.attempts < excluded.attempts",
        (run_id, stage, _track_col(track), attempt, input_hash, code_version, inp, now_iso()),
    )
    return cur.rowcount > 0
