"""What a stored run and its stages mean to a reader: one honest status per stage, durations,
errors, and the run list's filters. Every renderer (table, --json, stats) reads these.

Stored `stage_runs.status` stays the engine-facing checkpoint state (`done` means "output is
reusable"); the *view* status says what happened: a delivery that was not configured is
`skipped`, a webhook that failed after its retries is `failed`, a main-path failure is `error`.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from reflector_cli.pipeline import dag
from reflector_cli.store.repo import Store

VIEW_STATUSES = ("done", "reused", "skipped", "failed", "error", "running", "retrying")


def parse_ts(ts: str | None) -> datetime | None:
    if not ts:
        return None
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def seconds_between(start: str | None, end: str | None) -> float | None:
    a, b = parse_ts(start), parse_ts(end)
    if a is None or b is None:
        return None
    return round(max(0.0, (b - a).total_seconds()), 3)


def _output(row: dict[str, Any]) -> dict[str, Any]:
    try:
        doc = json.loads(row.get("output") or "null")
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _critical(stage: str) -> bool:
    return dag.BY_NAME[stage].critical if stage in dag.BY_NAME else True


def stage_status(row: dict[str, Any]) -> tuple[str, str | None]:
    """(view status, error message or None) for one stage_runs row."""
    stored = row["status"]
    if stored == "failed":
        return ("error" if _critical(row["stage"]) else "failed"), row.get("error")
    if stored != "done":
        return stored, row.get("error")
    out = _output(row)
    # Delivery outputs say `skipped`/`failed` themselves (DeliveryOut.status).
    if out.get("status") == "skipped":
        return "skipped", None
    if out.get("status") == "failed":
        return "failed", out.get("detail") or "failed"
    # Consent cleanup that could not delete everything reports the keys it left behind.
    if out.get("failed"):
        return "failed", f"could not delete {len(out['failed'])} audio artifact(s)"
    if row.get("reused_from"):
        return "reused", None
    return "done", None


def attempts(row: dict[str, Any]) -> int:
    """Engine attempts, or the delivery's own HTTP attempts when it retried inside one."""
    inner = _output(row).get("attempts") if row.get("reused_from") is None else 0
    return max(int(row["attempts"] or 0), inner if isinstance(inner, int) else 0)


def stage_details(stage: str, out: dict[str, Any]) -> str:
    """One short line of what a stage found, e.g. "280 words; crosstalk removed: 0/12/3"."""
    if stage != "merge_transcripts" or not out:
        return ""
    if not out.get("crosstalk"):
        return f"{out.get('word_count', 0)} words; crosstalk not applied"
    removed = "/".join(str(n) for n in out.get("crosstalk_removed") or [])
    return f"{out.get('word_count', 0)} words; crosstalk removed: {removed}"


def stage_view(row: dict[str, Any]) -> dict[str, Any]:
    status, error = stage_status(row)
    detail = _output(row).get("detail")
    return {
        "stage": row["stage"],
        "track": row["track"],
        "status": status,
        "attempts": attempts(row),
        "duration_s": seconds_between(row["started_at"], row["ended_at"]),
        "error": error,
        # What the stage found or why it did nothing: a delivery's own note, else e.g.
        # "280 words; crosstalk removed: 0/12/3".
        "detail": (detail if isinstance(detail, str) and detail else None)
        or stage_details(row["stage"], _output(row))
        or None,
        # The stage's own output (e.g. a track's detected language), for machines.
        "output": json.loads(row["output"]) if row.get("output") else None,
        "started_at": row["started_at"],
        "ended_at": row["ended_at"],
        "reused": row["reused_from"] is not None,
        "reused_from": row["reused_from"],
    }


def stage_views(store: Store, run_id: str) -> list[dict[str, Any]]:
    return [stage_view(r) for r in store.stage_runs(run_id)]


def run_view(row: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "id",
        "recording_id",
        "transcript_id",
        "provider",
        "role",
        "status",
        "created_at",
        "ended_at",
        "error_stage",
        "error_message",
    )
    doc = {k: row[k] for k in keys}
    doc["duration_s"] = seconds_between(row["created_at"], row["ended_at"])
    return doc


def list_runs(
    store: Store,
    limit: int = 20,
    *,
    status: str | None = None,
    provider: str | None = None,
    since: str | None = None,
) -> list[dict[str, Any]]:
    """Newest first; `since` is an ISO timestamp in the store's format (UTC, `Z`)."""
    where, params = [], []
    for col, value in (("status", status), ("provider", provider)):
        if value:
            where.append(f"{col} = ?")
            params.append(value)
    if since:
        where.append("created_at >= ?")
        params.append(since)
    sql = "SELECT * FROM runs"
    if where:
        sql += " WHERE " + " AND ".join(where)
    rows = store._all(sql + " ORDER BY created_at DESC LIMIT ?", (*params, limit))
    return [run_view(r) for r in rows]


def latest_ended_run(store: Store, recording_id: str, provider: str) -> str | None:
    """The newest run of the recording on `provider` that ended (compare --reuse)."""
    row = store._one(
        "SELECT id FROM runs WHERE recording_id = ? AND provider = ? AND status = 'ended'"
        " ORDER BY created_at DESC LIMIT 1",
        (recording_id, provider),
    )
    return row["id"] if row else None


def reused_from(store: Store, run_id: str, stage: str) -> str | None:
    """The run a non-per-track stage's checkpoint of `run_id` was reused from, if any."""
    row = store._one(
        "SELECT reused_from FROM stage_runs WHERE run_id = ? AND stage = ? AND track = -1",
        (run_id, stage),
    )
    return row["reused_from"] if row else None


def last_event(store: Store, run_id: str, event_type: str) -> dict[str, Any] | None:
    """The data of the run's newest event of `event_type`."""
    hit = store._one(
        "SELECT data FROM events WHERE run_id = ? AND type = ? ORDER BY id DESC",
        (run_id, event_type),
    )
    return json.loads(hit["data"]) if hit else None


def shadow_run_ids(store: Store, transcript_id: str) -> set[str]:
    """Runs of the transcript that are not its progress (shadow / comparison runs)."""
    rows = store._all(
        "SELECT id FROM runs WHERE transcript_id = ? AND role != 'primary'", (transcript_id,)
    )
    return {r["id"] for r in rows}


def primary_running(store: Store, transcript_id: str) -> bool:
    """A primary run of the transcript is marked running."""
    row = store._one(
        "SELECT 1 AS x FROM runs WHERE transcript_id = ? AND role = 'primary'"
        " AND status = 'running'",
        (transcript_id,),
    )
    return row is not None
