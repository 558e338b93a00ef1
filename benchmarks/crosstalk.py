"""Crosstalk suppression on real voices, one command: clean meeting, crosstalk meetings (others
leaking into each microphone at -15 to -30 dB), and a genuine-overlap variant, each processed by
`reflector process` with `--crosstalk off` and `on`, scored against truth.json.

    .venv/bin/python benchmarks/crosstalk.py [--keep DIR] [--json]

Bars (issue 11): crosstalk meetings total WER <= 0.22, per-speaker WER <= 0.30, no participant
with more than a handful of other people's words; clean real speech total WER <= 0.05.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import crosstalk_cases as cases  # noqa: E402
from benchmarks.crosstalk_score import score  # noqa: E402

console = Console(width=160)
BARS = {"total_wer": 0.22, "speaker_wer": 0.30, "others_words": 5, "clean_wer": 0.05}


def build_cases(root: Path, seed: int) -> dict[str, Path]:
    """The meetings to process: name -> folder."""
    src = cases.shared_data()
    m = cases.load_meeting(src)
    n = len(m.names)
    out: dict[str, Path] = {"clean": src}
    for level in (-15, -20, -25, -30):
        tracks = cases.with_crosstalk(m, cases.uniform_levels(n, level), seed)
        out[f"crosstalk {level} dB"] = cases.write_case(root / f"xt{-level}", m, tracks)
    # Random level per pair, and one talker 10 dB quieter than the rest (a soft voice).
    quiet = [0.0] * n
    quiet[1] = -10.0
    tracks = cases.with_crosstalk(m, cases.mixed_levels(n, seed), seed + 1, quiet)
    out["crosstalk mixed, quiet LS1988"] = cases.write_case(root / "xtmixed", m, tracks)
    ov = cases.with_overlaps(m)
    tracks = cases.with_crosstalk(ov, cases.uniform_levels(n, -20), seed + 2)
    out["overlap + crosstalk -20 dB"] = cases.write_case(root / "overlap", ov, tracks)
    return out


def reflector(data: Path, *args: str) -> Any:
    env = {**os.environ, "REFLECTOR_DATA_DIR": str(data)}
    res = subprocess.run(
        [sys.executable, "-m", "reflector_cli.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if res.returncode != 0:
        raise RuntimeError(f"reflector {' '.join(args)} failed: {res.stderr.strip()[-400:]}")
    return json.loads(res.stdout)


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_case(folder: Path, data: Path, mode: str) -> dict[str, Any]:
    t0, c0 = time.perf_counter(), _cpu()
    view = reflector(data, "process", str(folder), "--crosstalk", mode, "--no-deliver", "--json")
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    doc = reflector(data, "export", view["transcript_id"], "--format", "json")
    with sqlite3.connect(data / "reflector.sqlite3") as db:
        rows = db.execute(
            "SELECT stage, output, reused_from FROM stage_runs WHERE run_id = ?",
            (view["run_id"],),
        ).fetchall()
    merge = next(json.loads(o) for s, o, _ in rows if s == "merge_transcripts")
    removed: list[dict[str, Any]] = []
    if merge.get("crosstalk_key"):
        doc_path = data / merge["crosstalk_key"]
        removed = json.loads(doc_path.read_text())["removed"] if doc_path.exists() else []
    return {
        "words": doc["words"],
        "participants": doc["participants"],
        "removed_per_track": merge.get("crosstalk_removed") or [],
        "removed": removed,
        "cpu_s": round(cpu, 1),
        "wall_s": round(wall, 1),
    }


def evaluate(folders: dict[str, Path], root: Path) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for name, folder in folders.items():
        truth = json.loads((folder / "truth.json").read_text())
        data = root / "data" / folder.name
        per_mode = {}
        # Off transcribes every track whole; on skips other talkers' leak before transcribing
        # (stages/speech_gate) and drops what leak is left at merge: the CPU column shows both.
        for mode in ("off", "on"):
            run = run_case(folder, data, mode)
            per_mode[mode] = {**score(run, truth), **{k: run[k] for k in ("cpu_s", "wall_s")}}
            console.print(f"{name} · crosstalk {mode}: {run['wall_s']} s", highlight=False)
        results[name] = per_mode
    return results


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def print_tables(results: dict[str, dict[str, Any]]) -> None:
    summary = Table(title="crosstalk suppression: off vs on (total WER is speaker-attributed)")
    for col in ("meeting", "crosstalk", "total WER", "worst speaker WER", "others' words (max)"):
        summary.add_column(col)
    summary.add_column("removed / own removed")
    summary.add_column("CPU s")
    for name, modes in results.items():
        for mode, r in modes.items():
            summary.add_row(
                name,
                mode,
                _fmt(r["total_wer"]),
                _fmt(max(r["speaker_wer"].values())),
                f"{sum(r['others_words'].values())} ({max(r['others_words'].values())})",
                f"{sum(r['removed_per_track'])} / {r['own_removed']}",
                f"{r['cpu_s']}",
            )
    console.print(summary)
    for name, modes in results.items():
        t = Table(title=f"{name}: per speaker (off → on)")
        for col in ("speaker", "WER", "others' words", "removed as crosstalk", "own removed"):
            t.add_column(col)
        off, on = modes["off"], modes["on"]
        for i, spk in enumerate(on["speaker_wer"]):
            t.add_row(
                spk,
                f"{_fmt(off['speaker_wer'][spk])} → {_fmt(on['speaker_wer'][spk])}",
                f"{off['others_words'][spk]} → {on['others_words'][spk]}",
                str(on["removed_per_track"][i] if on["removed_per_track"] else 0),
                str(on["own_removed_by"].get(spk, 0)),
            )
        console.print(t)
        if on.get("overlaps"):
            ov = Table(title=f"{name}: overlapping utterances, WER of each talker (off → on)")
            for col in ("speaker", "utterance", "during overlap with", "WER"):
                ov.add_column(col)
            for o, o_off in zip(on["overlaps"], off["overlaps"], strict=True):
                ov.add_row(
                    o["speaker"],
                    f"{o['start']:.1f}-{o['end']:.1f} s",
                    o["with"],
                    f"{_fmt(o_off['wer'])} → {_fmt(o['wer'])}",
                )
            console.print(ov)


def check_bars(results: dict[str, dict[str, Any]]) -> list[str]:
    failed = []
    for name, modes in results.items():
        r = modes["on"]
        if name == "clean":
            if r["total_wer"] > BARS["clean_wer"]:
                failed.append(f"{name}: total WER {r['total_wer']:.3f} > {BARS['clean_wer']}")
            continue
        if r["total_wer"] > BARS["total_wer"]:
            failed.append(f"{name}: total WER {r['total_wer']:.3f} > {BARS['total_wer']}")
        worst = max(r["speaker_wer"].items(), key=lambda kv: kv[1])
        if worst[1] > BARS["speaker_wer"]:
            failed.append(f"{name}: {worst[0]} WER {worst[1]:.3f} > {BARS['speaker_wer']}")
        most = max(r["others_words"].items(), key=lambda kv: kv[1])
        if most[1] > BARS["others_words"]:
            failed.append(f"{name}: {most[0]} has {most[1]} of other people's words")
    return failed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", type=Path, help="build cases and data dirs here (kept)")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="xtalk-") as tmp:
        root = args.keep or Path(tmp)
        results = evaluate(build_cases(root / "cases", args.seed), root)
    print_tables(results)
    if args.json:
        print(json.dumps(results, indent=1))
    failed = check_bars(results)
    for f in failed:
        console.print(f"[red]bar missed[/]: {f}")
    if not failed:
        console.print("[green]all crosstalk bars hold[/] (crosstalk on)")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
