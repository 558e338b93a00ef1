"""Per-provider stats: run counts, failures by stage, retries, percentiles, agreement."""

from __future__ import annotations

import json
from pathlib import Path

from reflector_cli.store.repo import Store
from reflector_cli.store.stats import percentile, provider_stats
from tests.store.test_runviews import delivery
from tests.store.test_store import pipe


def _stage(s: Store, run: str, stage: str, start: str, end: str, **kw: object) -> None:
    s.stage_started(run, stage, None, "h", "v", "{}")
    s.stage_finished(run, stage, None, kw.pop("status", "done"), output="{}", **kw)  # type: ignore[arg-type]
    s.conn.execute(
        "UPDATE stage_runs SET started_at = ?, ended_at = ? WHERE run_id = ? AND stage = ?",
        (f"2026-12-01T10:{start}.000Z", f"2026-12-01T10:{end}.000Z", run, stage),
    )


def test_percentile_interpolates_like_numpy() -> None:
    assert percentile([], 0.5) is None
    assert percentile([4.0], 0.95) == 4.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile(list(map(float, range(1, 101))), 0.95) == 95.05


def test_provider_stats_counts_runs_failures_retries_and_agreement(tmp_path: Path) -> None:
    s = Store(tmp_path / "db.sqlite3")
    s.ensure_recording(pipe())
    s.conn.execute("UPDATE transcripts SET duration_s = 120 WHERE id = 't-rec-1'")
    s.create_run("r-l", pipe(), "local")
    s.create_run("r-h", pipe(), "hatchet")
    s.create_run("r-h2", pipe(), "hatchet")
    _stage(s, "r-l", "mixdown_tracks", "00:00", "00:04")
    _stage(s, "r-h", "mixdown_tracks", "00:00", "00:10")
    s.stage_started("r-h", "send_webhook", None, "h", "v", "{}")
    s.stage_finished("r-h", "send_webhook", None, "done", output=delivery("failed", "503", 3))
    s.stage_started("r-h2", "finalize", None, "h", "v", "{}")
    s.stage_started("r-h2", "finalize", None, "h", "v", "{}")
    s.stage_finished("r-h2", "finalize", None, "failed", error="boom")
    s.finish_run("r-l", "ended")
    s.finish_run("r-h", "ended")
    s.finish_run("r-h2", "error", "finalize", "boom")
    for cid, agree in (("c1", 1), ("c2", 0)):
        s.add_comparison(
            {
                "id": cid,
                "recording_id": "rec-1",
                "created_at": "2026-12-01T10:00:00.000Z",
                "providers": json.dumps(["local", "hatchet"]),
                "runs": "{}",
                "agree": agree,
                "report": "{}",
            }
        )
    st = provider_stats(s)
    assert set(st) == {"hatchet", "local"}
    assert st["local"]["runs"] == 1 and st["hatchet"]["runs"] == 2
    assert st["hatchet"]["by_status"] == {"ended": 1, "error": 1}
    assert st["hatchet"]["failures_by_stage"] == {"finalize": 1, "send_webhook": 1}
    assert st["hatchet"]["retries"] == 1 + 2 and st["local"]["retries"] == 0
    mix = st["hatchet"]["stages"]["mixdown_tracks"]
    assert mix["wall_s"]["p50"] == 10.0 and mix["per_audio_min_s"]["p50"] == 5.0
    assert st["local"]["stages"]["mixdown_tracks"]["wall_s"]["p95"] == 4.0
    assert st["hatchet"]["shadow"] == {"comparisons": 2, "agree": 1, "rate": 0.5}
    # A window after every run leaves nothing to count.
    assert provider_stats(s, since="2999-01-01T00:00:00.000Z") == {}
