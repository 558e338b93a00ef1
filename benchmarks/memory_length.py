"""Issue 15's memory bar: `reflector process` on generated 4-track meetings of 15, 30 and 60
minutes; wall time and peak summed RSS of the whole process tree per length, and the growth
60/15 (sub-linear growth shows as a memory ratio well under the length ratio).

    .venv/bin/python benchmarks/memory_length.py [--minutes 15,30,60] [--speakers 4]

Meetings come from scripts/make_fixture.py (espeak-ng), cached by length, speakers and the
generator's own hash under $REFLECTOR_BENCH_CACHE (default ~/.cache/reflector-bench).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import proctree  # noqa: E402

console = Console(stderr=True)
GENERATOR = ROOT / "scripts" / "make_fixture.py"
BAR_GB = 1.0


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "reflector-bench"
    return Path(os.environ.get("REFLECTOR_BENCH_CACHE", default))


def meeting(minutes: float, speakers: int) -> Path:
    """The generated meeting folder, made once per (length, speakers, generator version)."""
    tag = hashlib.sha256(GENERATOR.read_bytes()).hexdigest()[:10]
    out = cache_dir() / f"{minutes:g}min-{speakers}sp-{tag}"
    folder = out / "meeting"
    if not (out / "meeting.truth.json").is_file():
        console.print(f"generating a {minutes:g}-minute {speakers}-track meeting in {out}")
        t0 = time.monotonic()
        subprocess.run(
            [sys.executable, str(GENERATOR), "--minutes", f"{minutes:g}"]
            + ["--speakers", str(speakers), "--out", str(out)],
            check=True,
            stdout=subprocess.DEVNULL,
            cwd=ROOT,
        )
        console.print(f"  generated in {time.monotonic() - t0:.0f} s")
    return folder


def process(folder: Path, work: Path) -> proctree.Sample:
    data = work / f"data-{folder.parent.name}"
    cmd = [*proctree.reflector_cmd(), "process", str(folder), "--json", "--data-dir", str(data)]
    return proctree.run(cmd, env=proctree.clean_env(), cwd=work, interval=0.1, pss=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", default="15,30,60", help="comma-separated meeting lengths")
    ap.add_argument("--speakers", type=int, default=4)
    ap.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = ap.parse_args()
    lengths = sorted(float(m) for m in args.minutes.split(","))
    folders = {m: meeting(m, args.speakers) for m in lengths}  # generation is never timed
    console.print(f"{proctree.load_average()} before measuring")
    rows = []
    with tempfile.TemporaryDirectory(prefix="reflector-mem-") as tmp:
        for m in lengths:
            s = process(folders[m], Path(tmp))
            doc = json.loads(s.stdout)
            rows.append(
                {
                    "minutes": m,
                    "wall_s": s.wall_s,
                    "cpu_s": s.cpu_s,
                    "peak_rss_mb": s.peak_rss / 2**20,
                    "peak_pss_mb": s.peak_pss / 2**20,
                    "max_running_threads": s.max_running,
                    "max_processes": s.max_procs,
                    "words": (doc[0] if isinstance(doc, list) else doc).get("word_count"),
                }
            )
            console.print(f"{m:g} min: {s.wall_s:.0f} s, peak RSS {s.peak_rss / 2**20:.0f} MB")
    t = Table(title=f"{args.speakers}-track generated meetings: whole `reflector process`")
    for col in ("minutes", "wall s", "× real time", "CPU s", "peak RSS MB", "peak PSS MB", "words"):
        t.add_column(col, justify="right")
    for r in rows:
        t.add_row(
            f"{r['minutes']:g}",
            f"{r['wall_s']:.0f}",
            f"{r['minutes'] * 60 / r['wall_s']:.1f}",
            f"{r['cpu_s']:.0f}",
            f"{r['peak_rss_mb']:.0f}",
            f"{r['peak_pss_mb']:.0f}",
            str(r["words"]),
        )
    console.print(t)
    first, last = rows[0], rows[-1]
    growth = {
        "length": last["minutes"] / first["minutes"],
        "time": last["wall_s"] / first["wall_s"],
        "rss": last["peak_rss_mb"] / first["peak_rss_mb"],
    }
    longest_gb = last["peak_rss_mb"] / 1024
    console.print(
        f"growth {last['minutes']:g}/{first['minutes']:g} min: length {growth['length']:.1f}×, "
        f"time {growth['time']:.2f}×, peak RSS {growth['rss']:.2f}×; "
        f"{last['minutes']:g} min peak {longest_gb:.2f} GB (bar ≤ {BAR_GB:.1f} GB at 60 min: "
        f"{'met' if longest_gb <= BAR_GB else 'NOT met'})"
    )
    console.print(f"{proctree.load_average()} after")
    if args.json:
        print(json.dumps({"rows": rows, "growth": growth}, indent=2))


if __name__ == "__main__":
    main()
