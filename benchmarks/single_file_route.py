"""Issue 15's first bar: whole `reflector process` against the single-file route (mix the tracks,
one faster-whisper pass) and against bare faster-whisper over the tracks one by one; N
alternated rounds of three whole processes, medians and ratios side by side.

    .venv/bin/python benchmarks/single_file_route.py [--meeting DIR] [--only F1,F2,F3]
        [--pairs 5] [--load]

The held-out 3-track meeting of the ninth session's figures: real voices, three of the five
readers of `../shared/data/real-read-meeting`:

    .venv/bin/python benchmarks/single_file_route.py --meeting ../shared/data/real-read-meeting \
        --only ls2412.flac,ls1988.flac,ls3752.flac

`--load` keeps a CPU-heavy numpy loop busy on one core during every run (the "another process
is running" bar). Busy threads are sampled from /proc for each run's whole process tree.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import proctree  # noqa: E402
from benchmarks.proctree import Sample, spread  # noqa: E402
from reflector_cli.core.config import default_model_path  # noqa: E402
from reflector_cli.sources.folder import scan_folder  # noqa: E402

console = Console(stderr=True)
ROUTES = ("reflector", "mix+whisper", "whisper per track")
BARS = {"mix+whisper": 0.65, "whisper per track": 0.60}
# With a GPU, the same two-way comparison on CUDA (float16; reflector batches by default).
GPU_ROUTES = ("reflector cuda", "mix+whisper cuda")


def gpu_count() -> int:
    import ctranslate2

    return ctranslate2.get_cuda_device_count()


def _ts(text: str) -> float:
    t = datetime.fromisoformat(text)
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()


def where_time_goes(sample: Sample, data: Path) -> dict[str, float]:
    """Start-up (spawn → first stage start) and shutdown (last stage end → exit), from runs show."""
    doc = json.loads(sample.stdout)
    doc = doc[0] if isinstance(doc, list) else doc
    shown = subprocess.run(
        [*proctree.reflector_cmd(), "runs", "show", doc["run_id"], "--json"]
        + ["--data-dir", str(data)],
        capture_output=True,
        text=True,
        check=True,
        env=proctree.clean_env(),
    )
    stages = [s for s in json.loads(shown.stdout)["stages"] if s["started_at"] and s["ended_at"]]
    first = min(_ts(s["started_at"]) for s in stages)
    last = max(_ts(s["ended_at"]) for s in stages)
    return {
        "startup_s": first - sample.started,
        "shutdown_s": sample.started + sample.wall_s - last,
        "words": doc.get("word_count", 0),
    }


def commands(meeting: Path, args: argparse.Namespace, work: Path, i: int) -> dict[str, list[str]]:
    tracks = [f"{t.path.resolve()}@{t.offset_s}" for t in scan_folder(meeting).tracks]
    peer = [sys.executable, str(ROOT / "benchmarks" / "peer.py")]
    opts = ["--model", args.model, "--threads", str(args.peer_threads)]
    ours = [*proctree.reflector_cmd(), "process", str(meeting.resolve()), "--json"]
    cuda = ["--device", "cuda", "--compute-type", "float16"]
    return {
        "reflector": [*ours, "--data-dir", str(work / f"data-{i}")],
        "mix+whisper": [*peer, "mix", *opts, *tracks],
        "whisper per track": [*peer, "tracks", *opts, *tracks],
        "reflector cuda": [*ours, "--device", "cuda", "--data-dir", str(work / f"gpu-{i}")],
        "mix+whisper cuda": [*peer, "mix", *opts, *cuda, *tracks],
    }


def measure(args: argparse.Namespace, work: Path) -> tuple[dict[str, list[Sample]], list[dict]]:
    routes = ROUTES + (GPU_ROUTES if args.gpus else ())
    samples: dict[str, list[Sample]] = {r: [] for r in routes}
    inside: list[dict] = []
    for i in range(args.pairs):
        cmds = commands(args.meeting, args, work, i)
        k = i % len(routes)
        order = routes[k:] + routes[:k]  # rotate, so no route always runs first
        for route in order:
            s = proctree.run(cmds[route], env=proctree.clean_env(), cwd=work)
            samples[route].append(s)
            if route == "reflector":
                inside.append(where_time_goes(s, work / f"data-{i}"))
            console.print(f"round {i + 1}/{args.pairs}: {route} {s.wall_s:.2f} s")
    return samples, inside


def report(samples: dict[str, list[Sample]], inside: list[dict], args: argparse.Namespace) -> dict:
    n = proctree.cores()
    t = Table(title=f"{args.meeting.name}: whole processes, {args.pairs} alternated rounds")
    cols = (
        "route",
        "wall s median (min–max)",
        "CPU s",
        "running threads max / mean",
        "peak RSS MB",
    )
    for col in cols:
        t.add_column(col, justify="left" if col == "route" else "right")
    doc: dict = {"meeting": str(args.meeting), "pairs": args.pairs, "load": args.load}
    doc |= {"gpus": args.gpus, "routes": {}}
    for route, ss in samples.items():
        walls = [s.wall_s for s in ss]
        mr = max(s.max_running for s in ss)
        mean = statistics.fmean(s.mean_running for s in ss)
        t.add_row(
            route,
            spread(walls),
            f"{statistics.median(s.cpu_s for s in ss):.2f}",
            f"{mr} / {mean:.1f} (cores {n})",
            f"{max(s.peak_rss for s in ss) / 2**20:.0f}",
        )
        doc["routes"][route] = {
            "wall_s": walls,
            "cpu_s": [s.cpu_s for s in ss],
            "max_running_threads": mr,
            "mean_running_threads": mean,
            "peak_rss_mb": max(s.peak_rss for s in ss) / 2**20,
        }
    console.print(t)
    r = Table(title="reflector / peer (per round; bar on an idle machine, 1.0 under --load)")
    for col in ("peer", "ratio of medians", "per-round median (min–max)", "bar", "CPU s ratio"):
        r.add_column(col, justify="left" if col == "peer" else "right")
    pairs = [("reflector", "mix+whisper"), ("reflector", "whisper per track")]
    if args.gpus:
        pairs.append(GPU_ROUTES)
    for us, peer in pairs:
        ours = [s.wall_s for s in samples[us]]
        theirs = [s.wall_s for s in samples[peer]]
        per = [a / b for a, b in zip(ours, theirs, strict=True)]
        bar = 1.0 if args.load else BARS.get(peer, 1.0)
        med = statistics.median(ours) / statistics.median(theirs)
        # CPU seconds hardly depend on the machine's load; on a saturated machine wall follows them.
        cpu = statistics.median(s.cpu_s for s in samples[us]) / statistics.median(
            s.cpu_s for s in samples[peer]
        )
        r.add_row(peer, f"{med:.2f}×", spread(per) + "×", f"≤ {bar:.2f}", f"{cpu:.2f}×")
        doc["routes"][peer]["cpu_ratio_of_medians"] = cpu
        doc["routes"][peer]["ratio_of_medians"] = med
        doc["routes"][peer]["per_round_ratios"] = per
    console.print(r)
    up = [x["startup_s"] for x in inside]
    down = [x["shutdown_s"] for x in inside]
    console.print(
        f"reflector: spawn → first stage {spread(up)} s, last stage → exit {spread(down)} s; "
        f"words {inside[-1]['words']}"
    )
    doc["reflector_startup_s"], doc["reflector_shutdown_s"] = up, down
    return doc


def subset(meeting: Path, files: list[str], into: Path) -> Path:
    """A copy of `meeting` with only the participants whose file is in `files`."""
    manifest = json.loads((meeting / "recording.json").read_text())
    kept = [p for p in manifest["participants"] if p["file"] in files]
    missing = sorted(set(files) - {p["file"] for p in kept})
    if missing:
        raise SystemExit(f"--only: {', '.join(missing)} not in {meeting}/recording.json")
    into.mkdir(parents=True)
    for p in kept:
        shutil.copyfile(meeting / p["file"], into / p["file"])
    manifest["participants"] = kept
    manifest["room"] = f"{manifest.get('room', meeting.name)}-{len(kept)}"
    (into / "recording.json").write_text(json.dumps(manifest, indent=2))
    return into


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--meeting", type=Path, default=ROOT / "fixtures" / "meeting")
    ap.add_argument(
        "--only", help="keep only these participants' files (comma-separated) of --meeting"
    )
    ap.add_argument("--pairs", type=int, default=5, help="rounds of (reflector, mix, per track)")
    ap.add_argument("--load", action="store_true", help="a CPU-heavy competitor runs throughout")
    ap.add_argument("--model", default=default_model_path(), help="model for the peers")
    ap.add_argument("--peer-threads", type=int, default=0, help="peers' cpu_threads (0: default)")
    ap.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = ap.parse_args()
    if args.pairs < 1:
        ap.error("--pairs must be at least 1")
    args.gpus = gpu_count()
    console.print(f"{proctree.load_average()} before measuring")
    console.print(
        f"GPU: {args.gpus} CUDA device(s), CUDA routes added"
        if args.gpus
        else "GPU: none (CTranslate2 sees no CUDA device): CPU routes only"
    )
    noise = proctree.competitor() if args.load else None
    try:
        with tempfile.TemporaryDirectory(prefix="reflector-sfr-") as tmp:
            if args.only:
                args.meeting = subset(args.meeting, args.only.split(","), Path(tmp) / "meeting")
            samples, inside = measure(args, Path(tmp))
    finally:
        if noise:
            noise.kill()
            noise.wait()
    doc = report(samples, inside, args)
    doc["load_average_after"] = proctree.load_average()
    console.print(f"{doc['load_average_after']} after")
    if args.json:
        print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
