"""Issue 15's throughput figures: `reflector process A B C D` pipelined (one call) against the
same recordings one after another (separate calls, and one call with `--parallel 1`), rounds
alternated — wall time medians, meetings per hour, ratios, cores kept busy; with
`--providers`, 6 recordings submitted at once to 2 Hatchet and 2 Celery workers.

    .venv/bin/python benchmarks/throughput.py [--meeting DIR] [--count 4] [--rounds 3]
    .venv/bin/python benchmarks/throughput.py --providers [--count 6] [--workers 2 --slots 1]

Copies of the meeting get distinct recording ids (the id hashes the folder's content, so each
copy's recording.json names its own room). `--providers` needs the Hatchet engine
(scripts/hatchet-local) and starts its own Redis (scripts/redis-local) and workers.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import proctree, workers  # noqa: E402

console = Console(stderr=True)


def copies(meeting: Path, count: int, work: Path) -> list[Path]:
    """`count` copies of `meeting`, each a distinct recording (its manifest names another room)."""
    manifest = meeting / "recording.json"
    if not manifest.is_file():
        raise SystemExit(f"{meeting}: needs a recording.json to make distinct copies")
    out = []
    for i in range(count):
        folder = work / "meetings" / f"{meeting.name}-{i + 1}"
        shutil.copytree(meeting, folder)
        doc = json.loads(manifest.read_text())
        doc["room"] = f"{doc.get('room', 'room')}-copy-{i + 1}"
        (folder / "recording.json").write_text(json.dumps(doc, indent=2))
        out.append(folder)
    return out


def process_cmd(folders: list[Path], data: Path, *extra: str) -> list[str]:
    return [
        *proctree.reflector_cmd(),
        "process",
        *map(str, folders),
        "--json",
        "--data-dir",
        str(data),
        *extra,
    ]


# The local modes compared, each on fresh data dirs every round: the recordings in separate
# calls one after another (what `process A B C D` did before), in one call one at a time on
# the shared pool (`--parallel 1`: warm workers, no overlap), and pipelined (the default).
MODES = ("separate", "one-by-one", "pipelined")


def _mode(mode: str, folders: list[Path], data: Path, parallel: int | None) -> dict:
    env = proctree.clean_env()
    data.parent.mkdir(parents=True, exist_ok=True)
    if mode == "separate":
        runs = [proctree.run(process_cmd([f], data), env=env, cwd=data.parent) for f in folders]
    else:
        extra = ["--parallel", "1"] if mode == "one-by-one" else []
        if mode == "pipelined" and parallel:
            extra = ["--parallel", str(parallel)]
        runs = [proctree.run(process_cmd(folders, data, *extra), env=env, cwd=data.parent)]
        docs = json.loads(runs[0].stdout)
        if [d.get("status") for d in docs] != ["ended"] * len(folders):
            raise SystemExit(f"{mode}: not every recording ended: {docs}")
    wall, cpu = sum(r.wall_s for r in runs), sum(r.cpu_s for r in runs)
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "busy_cores": cpu / wall,  # mean cores kept busy over the whole batch
        "max_running_threads": max(r.max_running for r in runs),
        **heavy_occupancy(data / "reflector.sqlite3"),
    }


HEAVY = ("pad_track", "transcribe_track", "mixdown_tracks", "generate_waveform")


def heavy_occupancy(db: Path) -> dict:
    """From the stored stage times: the share of the batch (first run created → last run
    ended) with no heavy stage running, and the mean heavy stages in flight. Both stretch
    alike under load, so they show the pipelining where wall times only show CPU share."""
    conn = sqlite3.connect(db)
    try:
        runs = conn.execute("SELECT min(created_at), max(ended_at) FROM runs").fetchone()
        spans = conn.execute(
            f"SELECT started_at, ended_at FROM stage_runs WHERE stage IN {HEAVY}"
            " AND started_at IS NOT NULL AND ended_at IS NOT NULL"
        ).fetchall()
    finally:
        conn.close()
    t0, t1 = (datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() for t in runs)
    edges = sorted(
        (datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp(), step)
        for span in spans
        for t, step in zip(span, (1, -1), strict=True)
    )
    idle = busy = 0.0
    now, prev = 0, t0
    for t, step in edges:
        if now == 0:
            idle += t - prev
        busy += now * (t - prev)
        now, prev = now + step, t
    idle += t1 - prev
    return {"workers_idle_share": idle / (t1 - t0), "heavy_in_flight": busy / (t1 - t0)}


def local(folders: list[Path], work: Path, rounds: int, parallel: int | None) -> dict:
    """Every mode once per round, the order alternated round by round (the load drifts)."""
    per: dict[str, list[dict]] = {m: [] for m in MODES}
    for k in range(rounds):
        order = MODES if k % 2 == 0 else MODES[::-1]
        for mode in order:
            res = _mode(mode, folders, work / f"round-{k + 1}" / mode, parallel)
            per[mode].append(res)
            console.print(
                f"round {k + 1} {mode}: {res['wall_s']:.1f} s, CPU {res['cpu_s']:.1f} s, "
                f"{res['busy_cores']:.2f} cores busy, no heavy stage "
                f"{res['workers_idle_share']:.0%} of the time, heavy in flight "
                f"{res['heavy_in_flight']:.2f} ({proctree.load_average()})"
            )
    return {"count": len(folders), "rounds": rounds, "parallel": parallel, "modes": per}


def print_local(doc: dict) -> None:
    n, per = doc["count"], doc["modes"]
    t = Table(title=f"{n} recordings, local provider, {doc['rounds']} alternated rounds")
    cols = ("mode", "wall s median (min–max)", "meetings / hour", "CPU s", "cores busy")
    cols += ("no heavy stage", "heavy in flight", "max R")
    for col in cols:
        t.add_column(col, justify="left" if col == "mode" else "right")
    med = {m: statistics.median(r["wall_s"] for r in per[m]) for m in MODES}
    for m in MODES:
        rs = per[m]
        t.add_row(
            m,
            proctree.spread([r["wall_s"] for r in rs]),
            f"{n * 3600 / med[m]:.0f}",
            f"{statistics.median(r['cpu_s'] for r in rs):.1f}",
            f"{statistics.median(r['busy_cores'] for r in rs):.2f} / {proctree.cores()}",
            f"{statistics.median(r['workers_idle_share'] for r in rs):.0%}",
            f"{statistics.median(r['heavy_in_flight'] for r in rs):.2f}",
            str(max(r["max_running_threads"] for r in rs)),
        )
    console.print(t)
    for m in ("separate", "one-by-one"):
        ratios = [p["wall_s"] / o["wall_s"] for p, o in zip(per["pipelined"], per[m], strict=True)]
        console.print(
            f"pipelined / {m}: {med['pipelined'] / med[m]:.2f}× the time "
            f"(per round {min(ratios):.2f}–{max(ratios):.2f}); "
            f"{med[m] / med['pipelined']:.2f}× the meetings per hour"
        )


def submit_all(folders: list[Path], data: Path, provider: str, env: dict[str, str]) -> dict:
    """Every recording in its own `reflector process --provider P`, all started at once."""
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(
            process_cmd([f], data, "--provider", provider),
            env=env,
            cwd=data.parent,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for f in folders
    ]
    ends: dict[int, float] = {}

    def collect(i: int) -> str:
        out = procs[i].communicate()[0]
        ends[i] = time.perf_counter() - t0  # when this submitter saw its own run end
        return out

    with ThreadPoolExecutor(len(procs)) as pool:
        outs = list(pool.map(collect, range(len(procs))))
    wall = time.perf_counter() - t0
    docs = [json.loads(o) if o.strip() else {"status": "no output"} for o in outs]
    failed = [d.get("error") or d.get("status") for d in docs if d.get("status") != "ended"]
    return {"wall_s": wall, "each_s": [ends[i] for i in range(len(procs))], "failed": failed}


def providers(folders: list[Path], work: Path, args: argparse.Namespace) -> dict:
    base = proctree.clean_env()
    t0 = time.perf_counter()
    proctree.run(process_cmd(folders, work / "local"), env=base, cwd=work)
    out: dict = {"local_one_call_s": time.perf_counter() - t0, "count": len(folders)}
    console.print(f"local, one call: {out['local_one_call_s']:.1f} s")
    hatchet_env = workers.env_from("hatchet-local", "env")
    redis_dir = work / "redis"
    celery_env = workers.env_from("redis-local", "start", str(redis_dir))
    try:
        for provider, extra in (("hatchet", hatchet_env), ("celery", celery_env)):
            data = work / f"data-{provider}"
            env = {**base, **extra, "REFLECTOR_DATA_DIR": str(data)}
            if provider == "hatchet":  # our own namespace: nobody else's worker takes our tasks
                env["HATCHET_CLIENT_NAMESPACE"] = f"bench{uuid.uuid4().hex[:6]}"
            pool = workers.start(provider, args.workers, args.slots, env, work)
            try:
                res = submit_all(folders, data, provider, env)
            finally:
                workers.stop(pool)
            res["took"] = [dict(w.took()) for w in pool]
            out[provider] = res
            console.print(f"{provider}: {res['wall_s']:.1f} s, failed {res['failed'] or 'none'}")
    finally:
        subprocess.run([str(ROOT / "scripts" / "redis-local"), "stop", str(redis_dir)], check=False)
    return out


def print_providers(doc: dict, args: argparse.Namespace) -> None:
    n, base = doc["count"], doc["local_one_call_s"]
    t = Table(title=f"{n} recordings at once, {args.workers} workers × {args.slots} slots each")
    for col in ("provider", "wall s", "median run s", "overhead per run vs local", "failed"):
        t.add_column(col, justify="left" if col == "provider" else "right")
    t.add_row("local (one call)", f"{base:.1f}", "", "", "")
    for p in ("hatchet", "celery"):
        r = doc[p]
        t.add_row(
            p,
            f"{r['wall_s']:.1f}",
            f"{statistics.median(r['each_s']):.1f}",
            f"{(r['wall_s'] - base) / n:+.2f} s",
            str(len(r["failed"])),
        )
    console.print(t)
    for p in ("hatchet", "celery"):
        for i, took in enumerate(doc[p]["took"]):
            listed = ", ".join(f"{k} {v}" for k, v in sorted(took.items())) or "nothing"
            console.print(f"{p} worker {i + 1} took {sum(took.values())} stages: {listed}")
        both = all(sum(t.values()) for t in doc[p]["took"])
        console.print(f"{p}: every worker took work: {'yes' if both else 'NO'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--meeting", type=Path, default=ROOT / "fixtures" / "meeting")
    ap.add_argument("--count", type=int, help="recordings (default 4; 6 with --providers)")
    ap.add_argument("--providers", action="store_true", help="Hatchet and Celery workers")
    ap.add_argument("--workers", type=int, default=2, help="workers per provider")
    ap.add_argument("--slots", type=int, default=1, help="slots / concurrency per worker")
    ap.add_argument("--rounds", type=int, default=3, help="alternated rounds (local)")
    ap.add_argument("--parallel", type=int, help="pipelined mode's --parallel (default: its own)")
    ap.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = ap.parse_args()
    count = args.count or (6 if args.providers else 4)
    console.print(f"{proctree.load_average()} before measuring")
    with tempfile.TemporaryDirectory(prefix="reflector-tput-") as tmp:
        work = Path(tmp)
        folders = copies(args.meeting.resolve(), count, work)
        if args.providers:
            doc = providers(folders, work, args)
            print_providers(doc, args)
        else:
            doc = local(folders, work, args.rounds, args.parallel)
            print_local(doc)
    console.print(f"{proctree.load_average()} after")
    if args.json:
        print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
