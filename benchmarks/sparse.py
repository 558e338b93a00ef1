"""The sparse long meeting: every sentence found on its speaker's track, on time, and the same
words on a second run.

    .venv/bin/python benchmarks/sparse.py [--minutes 60 --speakers 4 --every 420 | --folder DIR]

Generates the meeting with scripts/make_sparse.py (espeak-ng, deterministic) unless --folder is
given, runs `reflector process` twice into separate data dirs (concurrently) and prints counts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ONSET_S = 1.0


def _process(folder: Path, data: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "REFLECTOR_DATA_DIR": str(data)}
    cmd = [sys.executable, "-m", "reflector_cli.cli", "process", str(folder), "--json"]
    return subprocess.Popen(
        [*cmd, "--no-deliver"], env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True
    )


def _words(data: Path, transcript_id: str) -> list[dict]:
    res = subprocess.run(
        [sys.executable, "-m", "reflector_cli.cli", "export", transcript_id, "--json"],
        env={**os.environ, "REFLECTOR_DATA_DIR": str(data)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(res.stdout)["words"]


def score(words: list[dict], utterances: list[dict]) -> dict:
    """Utterances with a word of their own speaker starting within ONSET_S of their start."""
    per: dict[str, list[int]] = {}
    onsets: list[float] = []
    for u in utterances:
        near = [
            abs(w["start"] - u["start"])
            for w in words
            if w["speaker"] == u["speaker"] and abs(w["start"] - u["start"]) <= ONSET_S
        ]
        tally = per.setdefault(u["name"], [0, 0])
        tally[1] += 1
        if near:
            tally[0] += 1
            onsets.append(min(near))
    return {
        "found": len(onsets),
        "of": len(utterances),
        "max_onset_s": max(onsets, default=float("nan")),
        "per_speaker": {k: f"{a}/{b}" for k, (a, b) in per.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--speakers", type=int, default=4)
    ap.add_argument("--every", type=float, default=420)
    ap.add_argument("--folder", type=Path, help="an already generated make_sparse.py --out dir")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="reflector-sparse-"))
    out = args.folder
    if out is None:
        out = work / "gen"
        t0 = time.perf_counter()
        opts = {"--out": out, "--minutes": args.minutes, "--speakers": args.speakers}
        opts["--every"] = args.every
        argv = [str(x) for kv in opts.items() for x in kv]
        script = ROOT / "scripts" / "make_sparse.py"
        subprocess.run([sys.executable, str(script), *argv], check=True, stdout=subprocess.DEVNULL)
        print(f"generated in {time.perf_counter() - t0:.0f} s")
    truth = json.loads((out / "meeting.truth.json").read_text())
    t0 = time.perf_counter()
    procs = [_process(out / "meeting", work / f"data{i}") for i in (1, 2)]
    docs = []
    for p in procs:
        stdout, _ = p.communicate()
        if p.returncode:
            raise SystemExit(f"reflector process failed ({p.returncode})")
        docs.append(json.loads(stdout))
    print(f"two runs (concurrent) in {time.perf_counter() - t0:.0f} s")
    runs = [_words(work / f"data{i}", d["transcript_id"]) for i, d in enumerate(docs, 1)]
    for i, words in enumerate(runs, 1):
        s = score(words, truth["utterances"])
        print(
            f"run {i}: {s['found']} of {s['of']} utterances found on their speaker's track "
            f"within {ONSET_S:.0f} s (max onset error {s['max_onset_s']:.2f} s); "
            f"per speaker {s['per_speaker']}; {len(words)} words"
        )
    same = [(w["speaker"], w["start"], w["text"]) for w in runs[0]] == [
        (w["speaker"], w["start"], w["text"]) for w in runs[1]
    ]
    print(f"second run gives the same words: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
