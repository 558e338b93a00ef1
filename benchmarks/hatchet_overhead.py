"""Dispatch overhead of the Hatchet provider: fixture total vs local, median per-task latency.

Needs a running engine and its env: `eval "$(scripts/hatchet-local env)"`. Starts its own
worker subprocess; prints one JSON object. The engine's `started_at` is when a task reached
the worker: heavy stages may then still wait for the worker's CPU gate
(providers/hatchet/workflows.py).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reflector_cli.core.config import load_settings  # noqa: E402
from reflector_cli.pipeline import dag  # noqa: E402
from reflector_cli.providers.hatchet import (  # noqa: E402
    FANOUT_OF,
    FANOUTS,
    child_parents,
    fanout_parents,
    task_timings,
)
from reflector_cli.runs.process import process_recording  # noqa: E402

WORKER = (
    "import sys; from reflector_cli.core.config import Settings; "
    "from reflector_cli.providers.hatchet import run_worker; "
    "run_worker(Settings(), slots=int(sys.argv[1]))"
)


def _start_worker(data: Path, slots: int, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "REFLECTOR_DATA_DIR": str(data),
        "PYTHONUNBUFFERED": "1",
        "HATCHET_CLIENT_WORKER_HEALTHCHECK_ENABLED": "true",
        "HATCHET_CLIENT_WORKER_HEALTHCHECK_PORT": str(port),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(slots)],
        env=env,
        cwd=ROOT,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"worker exited {proc.returncode}; see {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"worker not healthy; see {log}")


def _parents(task: str) -> tuple[str, ...]:
    """Engine-side parents: per-track stages hang off their fan-out task."""
    if task in FANOUTS:
        return fanout_parents(FANOUTS.index(task))
    s = dag.stage(task)
    if s.per_track:
        return child_parents(s) or (FANOUT_OF[task],)
    return tuple(dict.fromkeys(FANOUT_OF.get(p, p) for p in s.parents))


def dispatch_latencies(rows: list[dict[str, Any]]) -> list[float]:
    """Per task: seconds from 'all parents finished' (or creation) to 'started on a worker'."""
    done: dict[tuple[str, int | None], datetime] = {}
    for r in rows:
        if r["finished_at"]:
            done[(r["task"], r["track"])] = r["finished_at"]
    out: list[float] = []
    for r in rows:
        if not r["started_at"] or r["retry_count"]:
            continue  # retried attempts include backoff, not dispatch
        ready = r["created_at"]
        for p in _parents(r["task"]):
            key = (p, r["track"]) if r["track"] is not None and p not in FANOUTS else (p, None)
            if key in done:
                ready = max(ready, done[key])
        out.append(max(0.0, (r["started_at"] - ready).total_seconds()))
    return out


def bench_args(doc: str | None) -> argparse.Namespace:
    """--fixture and --slots, after checking the engine env (a namespace of the bench's own)."""
    ap = argparse.ArgumentParser(description=doc)
    ap.add_argument("--fixture", type=Path, default=ROOT / "fixtures" / "meeting")
    ap.add_argument("--slots", type=int, default=2)
    args = ap.parse_args()
    if "HATCHET_CLIENT_TOKEN" not in os.environ:
        raise SystemExit('no engine env: run eval "$(scripts/hatchet-local env)" first')
    os.environ.setdefault("HATCHET_CLIENT_NAMESPACE", f"bench{uuid.uuid4().hex[:6]}")
    return args


def main() -> int:
    args = bench_args(__doc__)
    with tempfile.TemporaryDirectory(prefix="hatchet-bench-") as tmp:
        base = Path(tmp)
        local_dir, hat_dir = base / "local", base / "hatchet"
        t0 = time.monotonic()
        local = process_recording(
            str(args.fixture), load_settings(data_dir=local_dir), provider="local"
        )
        local_s = time.monotonic() - t0
        worker = _start_worker(hat_dir, args.slots, 18000 + os.getpid() % 1000, base / "w.log")
        try:
            since = datetime.now(UTC) - timedelta(minutes=1)
            t0 = time.monotonic()
            remote = process_recording(
                str(args.fixture), load_settings(data_dir=hat_dir), provider="hatchet"
            )
            hatchet_s = time.monotonic() - t0
            rows = task_timings(remote.run_id or "", since)
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=30)
    lat = dispatch_latencies(rows)
    print(
        json.dumps(
            {
                "fixture": str(args.fixture),
                "local_ok": local.ok,
                "hatchet_ok": remote.ok,
                "local_total_s": round(local_s, 2),
                "hatchet_total_s": round(hatchet_s, 2),
                "overhead_s": round(hatchet_s - local_s, 2),
                "tasks": len(lat),
                "median_dispatch_s": round(statistics.median(lat), 3) if lat else None,
                "max_dispatch_s": round(max(lat), 3) if lat else None,
            },
            indent=2,
        )
    )
    return 0 if local.ok and remote.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
