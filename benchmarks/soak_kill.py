"""Kill/resume soak: `reflector process` killed N times at random moments with random signals,
then run to completion; the result must equal an uninterrupted run, with no process left over.

    python -m benchmarks.soak_kill [--kills 10] [--seed S] [--recording fixtures/meeting]

Prints counts per signal, leftover processes, time until the children were gone, and exits 1
when the resumed result differs, a process was left, or the database fails its integrity check.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.proctable import belonging, gone_within

ROOT = Path(__file__).resolve().parents[1]
SIGNALS = (signal.SIGKILL, signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
GONE_S = 5.0


def _cmd(recording: Path, data: Path) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, "REFLECTOR_DATA_DIR": str(data), "REFLECTOR_RETRY_BACKOFF": "0"}
    cmd = [sys.executable, "-X", "faulthandler", "-m", "reflector_cli.cli", "process"]
    return [*cmd, str(recording), "--json"], env


def run_to_end(recording: Path, data: Path) -> dict[str, Any]:
    cmd, env = _cmd(recording, data)
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    if res.returncode != 0:
        raise SystemExit(f"run into {data} failed ({res.returncode}): {res.stderr[-800:]}")
    return json.loads(res.stdout)


def comparable(data: Path, doc: dict[str, Any]) -> dict[str, Any]:
    """Transcript text, words, title and summaries as stored (ids of runs aside)."""
    conn = sqlite3.connect(data / "reflector.sqlite3")
    try:
        tid = doc["transcript_id"]
        words = conn.execute(
            "SELECT speaker, text, start, end FROM words WHERE transcript_id = ? ORDER BY rowid",
            (tid,),
        ).fetchall()
        row = conn.execute(
            "SELECT title, short_summary, long_summary FROM transcripts WHERE id = ?", (tid,)
        ).fetchone()
    finally:
        conn.close()
    view = {k: v for k, v in doc.items() if k != "run_id"}
    return {"view": view, "words": [list(w) for w in words], "texts": list(row)}


def kill_once(recording: Path, data: Path, sig: int, after_s: float) -> dict[str, Any]:
    cmd, env = _cmd(recording, data)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(after_s)
    finished = proc.poll() is not None
    children = len([p for p in belonging(data) if p != proc.pid])
    proc.send_signal(sig)
    t0 = time.monotonic()
    try:
        proc.communicate(timeout=30)
        hung = False
    except subprocess.TimeoutExpired:  # a reader of its output would have hung
        hung = True
        proc.send_signal(signal.SIGABRT)  # faulthandler: every thread's stack on stderr
        _, err = proc.communicate()
        print(f"hung after {signal.Signals(sig).name}; its stacks:\n{err.decode()[-4000:]}")
    output_s = time.monotonic() - t0
    left, gone_s = gone_within(data, GONE_S)
    return {
        "signal": signal.Signals(sig).name,
        "after_s": round(after_s, 2),
        "finished_before": finished,
        "children": children,
        "output_closed_s": round(output_s, 2),
        "hung": hung,
        "left": len(left),
        "gone_s": round(gone_s, 2),
    }


def integrity(data: Path) -> str:
    conn = sqlite3.connect(data / "reflector.sqlite3")
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def soak(recording: Path, kills: int, seed: int, lo: float, hi: float) -> int:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        ref_dir, data = Path(tmp) / "reference", Path(tmp) / "killed"
        t0 = time.monotonic()
        reference = comparable(ref_dir, run_to_end(recording, ref_dir))
        print(f"uninterrupted run: {time.monotonic() - t0:.1f} s")
        results = []
        for i in range(kills):
            r = kill_once(recording, data, rng.choice(SIGNALS), rng.uniform(lo, hi))
            results.append(r)
            print(f"kill {i + 1}/{kills}: {json.dumps(r)}")
        final = comparable(data, run_to_end(recording, data))
        same = final == reference
        check = integrity(data)
        left = sum(r["left"] for r in results)
        hung = sum(r["hung"] for r in results)
        by_sig = Counter(r["signal"] for r in results)
        worst = max((r["gone_s"] for r in results), default=0.0)
        print(f"signals: {dict(by_sig)}")
        print(f"leftover processes: {left}; hung readers: {hung}; children gone within {worst} s")
        print(f"resumed result identical to uninterrupted: {same}; integrity_check: {check}")
        return 0 if same and left == 0 and hung == 0 and check == "ok" else 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--recording", type=Path, default=ROOT / "fixtures" / "meeting")
    ap.add_argument("--min-s", type=float, default=1.0, help="earliest kill, seconds after start")
    ap.add_argument("--max-s", type=float, default=20.0, help="latest kill")
    a = ap.parse_args()
    print(f"seed {a.seed}")
    sys.exit(soak(a.recording.resolve(), a.kills, a.seed, a.min_s, a.max_s))


if __name__ == "__main__":
    main()
