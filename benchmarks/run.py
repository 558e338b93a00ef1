"""One command, side by side: bare sequential faster-whisper vs `reflector process` on the fixture,
per-stage wall times, peak memory, and audio-stage speed on a long synthetic meeting.

    .venv/bin/python benchmarks/run.py [--long-minutes 60 --long-speakers 8 | --skip-long]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.accuracy import accuracy  # noqa: E402
from benchmarks.rss import peak_tree_rss  # noqa: E402
from reflector_cli.core.config import load_settings  # noqa: E402
from reflector_cli.pipeline.execute import asr_options  # noqa: E402
from reflector_cli.sources.folder import scan_folder  # noqa: E402

console = Console()


def bare_whisper(folder: Path) -> tuple[float, float, int]:
    """Sequential transcription of the raw tracks, same model and settings as the pipeline."""
    from faster_whisper import WhisperModel

    s = load_settings()
    asr = asr_options(s)
    t0 = time.perf_counter()
    model = WhisperModel(
        s.model,
        device="cpu",
        compute_type=asr.compute_type,
        cpu_threads=s.cpu_threads,
        local_files_only=True,
    )
    load = time.perf_counter() - t0
    words = 0
    for track in scan_folder(folder).tracks:
        segments, _ = model.transcribe(
            str(track.path),
            language=s.language,
            beam_size=1,
            word_timestamps=True,
            vad_filter=s.vad,
            condition_on_previous_text=False,
        )
        words += sum(len(seg.words or []) for seg in segments)
    return time.perf_counter() - t0, load, words


def reflector_process(folder: Path, data: Path) -> tuple[float, int, dict]:
    env = {**os.environ, "REFLECTOR_DATA_DIR": str(data)}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "reflector_cli.cli", "process", str(folder), "--json"],
        env=env,
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    peak = [0]
    watcher = threading.Thread(target=peak_tree_rss, args=(proc.pid, peak), daemon=True)
    watcher.start()
    stdout, _ = proc.communicate()
    wall = time.perf_counter() - t0
    watcher.join(1)
    if proc.returncode:
        raise SystemExit(f"reflector process failed ({proc.returncode})")
    return wall, peak[0], json.loads(stdout)


def stage_times(data: Path, run_id: str) -> dict[str, float]:
    conn = sqlite3.connect(data / "reflector.sqlite3")
    out: dict[str, float] = {}
    for stage, start, end in conn.execute(
        "SELECT stage, started_at, ended_at FROM stage_runs WHERE run_id = ?", (run_id,)
    ):
        dt = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
        out[stage] = out.get(stage, 0.0) + dt
    return out


def long_meeting(minutes: int, speakers: int, work: Path) -> dict:
    folder = work / "long"
    t0 = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "make_fixture.py"),
            "--minutes",
            str(minutes),
            "--speakers",
            str(speakers),
            "--out",
            str(folder),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        cwd=ROOT,
    )
    gen = time.perf_counter() - t0
    res = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "audio_stages.py"),
            str(_meeting_dir(folder)),
            str(work / "long-data"),
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    report = json.loads(res.stdout)
    report["generate_s"] = gen
    return report


def _meeting_dir(folder: Path) -> Path:
    """The generator writes either the tracks directly or a `meeting/` folder inside `--out`."""
    return folder / "meeting" if (folder / "meeting").is_dir() else folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fixture", type=Path, default=ROOT / "fixtures" / "meeting")
    ap.add_argument("--long-minutes", type=int, default=60)
    ap.add_argument("--long-speakers", type=int, default=8)
    ap.add_argument("--skip-long", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="reflector-bench-"))
    minutes = max(t.offset_s + t.duration_s for t in scan_folder(args.fixture).tracks) / 60

    console.print(f"fixture {args.fixture} ({minutes * 60:.1f} s), {os.cpu_count()} cores")
    bare, load, bare_words = bare_whisper(args.fixture)
    wall, peak, doc = reflector_process(args.fixture, work / "data")
    stages = stage_times(work / "data", doc["run_id"])

    t = Table(title="fixture: bare sequential faster-whisper vs reflector process")
    t.add_column("measure")
    t.add_column("bare whisper", justify="right")
    t.add_column("reflector", justify="right")
    t.add_column("ratio", justify="right")
    t.add_row("wall time (s)", f"{bare:.2f}", f"{wall:.2f}", f"{wall / bare:.2f}×")
    t.add_row("model load (s)", f"{load:.2f}", "per worker", "")
    t.add_row("words", str(bare_words), str(doc["word_count"]), "")
    t.add_row("peak RSS, whole process tree (MB)", "", f"{peak / 2**20:.0f}", "")
    console.print(t)

    st = Table(title="reflector per-stage wall time (per-track stages summed over tracks)")
    st.add_column("stage")
    st.add_column("seconds", justify="right")
    for name, secs in sorted(stages.items(), key=lambda kv: -kv[1]):
        st.add_row(name, f"{secs:.3f}")
    audio = sum(stages.get(k, 0.0) for k in ("pad_track", "mixdown_tracks", "generate_waveform"))
    st.add_row("audio stages per audio-minute", f"{audio / minutes:.3f}")
    st.add_row("audio stages speed", f"{minutes * 60 / audio:.0f}× real time")
    console.print(st)

    truth = args.fixture.parent / f"{args.fixture.name}.truth.json"
    if truth.exists():
        export = subprocess.run(
            [
                sys.executable,
                "-m",
                "reflector_cli.cli",
                "export",
                doc["transcript_id"],
                "--json",
                "--data-dir",
                str(work / "data"),
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        acc = accuracy(
            json.loads(export.stdout)["words"], json.loads(truth.read_text())["utterances"]
        )
        at = Table(title="accuracy vs the fixture's script")
        at.add_column("measure")
        at.add_column("value", justify="right")
        at.add_column("bar", justify="right")
        at.add_row(
            "words carrying their track's speaker", f"{acc['speaker_accuracy']:.1%}", "≥ 98%"
        )
        at.add_row(
            "median |first word − utterance start|",
            f"{acc['median_onset_error_s']:.3f} s",
            "≤ 0.4 s",
        )
        for spk, w in acc["wer_by_speaker"].items():
            at.add_row(f"WER speaker {spk}", f"{w:.3f}", "≤ 0.30")
        console.print(at)

    if not args.skip_long:
        rep = long_meeting(args.long_minutes, args.long_speakers, work)
        lt = Table(
            title=f"synthetic {args.long_minutes}-min, {args.long_speakers}-track meeting: "
            "audio stages"
        )
        lt.add_column("stage")
        lt.add_column("seconds", justify="right")
        lt.add_column("s per meeting-minute", justify="right")
        lt.add_column("× real time (meeting)", justify="right")
        lt.add_column("× real time (track audio)", justify="right")
        meeting_min = rep["meeting_s"] / 60
        track_min = rep["track_audio_s"] / 60
        rows = list(rep["stages"].items()) + [("all audio stages", sum(rep["stages"].values()))]
        for name, secs in rows:
            lt.add_row(
                name,
                f"{secs:.2f}",
                f"{secs / meeting_min:.3f}",
                f"{meeting_min * 60 / secs:.0f}",
                f"{track_min * 60 / secs:.0f}",
            )
        lt.add_row("peak RSS (MB)", f"{rep['peak_rss_mb']:.0f}", "", "")
        console.print(lt)


if __name__ == "__main__":
    main()
