"""Per-provider health over a time window, for watching a cutover: runs, failures by stage,
retries, p50/p95 wall time per stage and per audio minute, shadow agreement."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from reflector_cli.store.repo import Store
from reflector_cli.store.runviews import attempts, seconds_between, stage_status

FAILED = ("error", "failed")


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default), None for no values."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return round(xs[lo] + (xs[hi] - xs[lo]) * (pos - lo), 3)


def _spread(values: list[float]) -> dict[str, Any]:
    return {"n": len(values), "p50": percentile(values, 0.5), "p95": percentile(values, 0.95)}


def _runs(store: Store, since: str | None) -> list[dict[str, Any]]:
    sql = (
        "SELECT r.id, r.provider, r.role, r.status, r.created_at, r.ended_at,"
        " t.duration_s AS audio_s FROM runs r LEFT JOIN transcripts t ON t.id = r.transcript_id"
    )
    if since:
        return store._all(sql + " WHERE r.created_at >= ? ORDER BY r.created_at", (since,))
    return store._all(sql + " ORDER BY r.created_at")


def _stage_rows(store: Store, run_ids: list[str]) -> list[dict[str, Any]]:
    if not run_ids:
        return []
    marks = ",".join("?" * len(run_ids))
    return store._all(f"SELECT * FROM stage_runs WHERE run_id IN ({marks})", tuple(run_ids))


def _agreement(store: Store, since: str | None) -> dict[str, dict[str, Any]]:
    sql = "SELECT providers, agree FROM comparisons"
    rows = store._all(sql + " WHERE created_at >= ?", (since,)) if since else store._all(sql)
    seen: dict[str, list[int]] = defaultdict(list)
    for r in rows:
        for p in json.loads(r["providers"]):
            seen[p].append(int(r["agree"]))
    return {
        p: {"comparisons": len(v), "agree": sum(v), "rate": round(sum(v) / len(v), 3)}
        for p, v in seen.items()
    }


def provider_stats(store: Store, since: str | None = None) -> dict[str, dict[str, Any]]:
    """{provider: {runs, by_status, failures_by_stage, retries, wall, stages, shadow}}."""
    runs = _runs(store, since)
    by_id = {r["id"]: r for r in runs}
    acc: dict[str, dict[str, Any]] = {}
    for r in runs:
        p = acc.setdefault(r["provider"], _empty())
        p["runs"] += 1
        p["by_status"][r["status"]] = p["by_status"].get(r["status"], 0) + 1
        wall = seconds_between(r["created_at"], r["ended_at"])
        if wall is not None and r["status"] == "ended":
            p["_wall"].append(wall)
            if r["audio_s"]:
                p["_wall_min"].append(wall / (r["audio_s"] / 60))
    for s in _stage_rows(store, list(by_id)):
        run = by_id[s["run_id"]]
        p = acc[run["provider"]]
        status, _ = stage_status(s)
        if status in FAILED:
            p["failures_by_stage"][s["stage"]] = p["failures_by_stage"].get(s["stage"], 0) + 1
        if status == "reused":
            continue  # a reused checkpoint measures nothing about this provider
        p["retries"] += max(0, attempts(s) - 1)
        took = seconds_between(s["started_at"], s["ended_at"])
        if took is None or status in ("running", "retrying"):
            continue
        times = p["_stages"].setdefault(s["stage"], ([], []))
        times[0].append(took)
        if run["audio_s"]:
            times[1].append(took / (run["audio_s"] / 60))
    agreement = _agreement(store, since)
    return {name: _finish(name, p, agreement) for name, p in sorted(acc.items())}


def _empty() -> dict[str, Any]:
    return {
        "runs": 0,
        "by_status": {},
        "failures_by_stage": {},
        "retries": 0,
        "_wall": [],
        "_wall_min": [],
        "_stages": {},
    }


def _finish(name: str, p: dict[str, Any], agreement: dict[str, Any]) -> dict[str, Any]:
    stages = {
        stage: {"wall_s": _spread(t), "per_audio_min_s": _spread(m)}
        for stage, (t, m) in sorted(p.pop("_stages").items())
    }
    p["wall_s"] = _spread(p.pop("_wall"))
    p["wall_per_audio_min_s"] = _spread(p.pop("_wall_min"))
    p["stages"] = stages
    p["shadow"] = agreement.get(name, {"comparisons": 0, "agree": 0, "rate": None})
    return p
