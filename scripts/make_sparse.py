"""Synthesise a long, sparse multitrack meeting: each person says one short sentence every few
minutes (espeak-ng, deterministic), with a manifest and a truth file like make_fixture's.

    python scripts/make_sparse.py --out /tmp/sparse --minutes 60 --speakers 4 --every 420
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_fixture as mf  # noqa: E402  (a sibling script, importable via sys.path)

# Speakers take turns: person i first speaks at FIRST_S + i * stagger, then every `every` s.
FIRST_S = 10.0
MAX_STAGGER_S = 60.0


def sparse_plan(
    people: list[mf.Speaker], minutes: float, every_s: float
) -> tuple[list[mf.Utterance], int]:
    """One sentence per person every `every_s` seconds, staggered, never past the end."""
    end = round(minutes * 60 * mf.TRACK_RATE)
    lines = [text for _, text in mf.SCRIPT]
    utts: list[mf.Utterance] = []
    n = 0
    stagger = min(MAX_STAGGER_S, every_s / len(people))
    for sp in people:
        t = FIRST_S + sp.index * stagger
        while True:
            text = lines[n % len(lines)]
            clip = mf.synthesize(text, sp.voice, sp.speed, sp.pitch)
            start = round(t * mf.TRACK_RATE)
            if start + clip.size > end - round(mf.TAIL_S * mf.TRACK_RATE):
                break
            utts.append(mf.Utterance(sp.index, text, start, clip))
            n += 1
            t += every_s
    utts.sort(key=lambda u: u.start)
    return utts, end


def generate(out_dir: Path, minutes: float, speakers: int, every_s: float) -> Path:
    """Write `<out_dir>/meeting/` (one track per person, all from 0 s; webm/ogg/mp3 in turn)
    and the truth."""
    people = [
        mf.Speaker(**{**sp.__dict__, "join_s": 0.0}) for sp in mf.bench_speakers(speakers, minutes)
    ]
    utts, end = sparse_plan(people, minutes, every_s)
    folder = out_dir / "meeting"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    mine = {sp.index: [u for u in utts if u.speaker == sp.index] for sp in people}
    jobs = [(folder / sp.file, sp, mine[sp.index], end) for sp in people]
    with ProcessPoolExecutor(max_workers=min(len(jobs), os.cpu_count() or 1)) as pool:
        for fut in [pool.submit(mf._write_track, *job, True) for job in jobs]:
            fut.result()
    manifest = {
        "room": "sparse-standup",
        "started_at_ms": mf.RECORDING_START_MS,
        "language": "en",
        "participants": [
            {"file": sp.file, "participant_id": sp.participant_id, "name": sp.name, "offset_s": 0}
            for sp in people
        ],
    }
    mf._write_json(folder / "recording.json", manifest)
    doc = mf.truth(people, utts, end)
    for sp in people:
        doc["speakers"][sp.index]["file"] = sp.file
    mf._write_json(out_dir / "meeting.truth.json", doc)
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--speakers", type=int, default=4)
    parser.add_argument("--every", type=float, default=420.0, help="seconds between sentences")
    args = parser.parse_args(argv)
    if shutil.which(mf.ESPEAK) is None:
        parser.error(f"{mf.ESPEAK} not found on PATH")
    folder = generate(args.out, args.minutes, args.speakers, args.every)
    print(folder)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
