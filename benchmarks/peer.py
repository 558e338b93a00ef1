"""The routes a user without multitrack support takes, as one whole process each:

    python benchmarks/peer.py mix    --model DIR FILE@OFFSET_S ...  # mix, then one ASR pass
    python benchmarks/peer.py tracks --model DIR FILE@OFFSET_S ...  # ASR per track, one by one

Same model, compute type, beam, VAD and word timestamps as the pipeline; no speakers. The mix is
what `ffmpeg -filter_complex adelay…,amix` gives, done in numpy (cheaper than amix). Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from faster_whisper import WhisperModel, decode_audio

RATE = 16000


def _transcribe(model: WhisperModel, audio: object, args: argparse.Namespace) -> int:
    segments, _ = model.transcribe(
        audio,
        language=args.language,
        beam_size=args.beam_size,
        word_timestamps=True,
        vad_filter=True,
        condition_on_previous_text=False,
    )
    return sum(len(s.words or []) for s in segments)


def _mix(tracks: list[tuple[str, float]]) -> np.ndarray:
    decoded = [(decode_audio(path, sampling_rate=RATE), off) for path, off in tracks]
    end = max(round(off * RATE) + a.size for a, off in decoded)
    mix = np.zeros(end, dtype=np.float32)
    for a, off in decoded:
        start = round(off * RATE)
        mix[start : start + a.size] += a
    peak = float(np.abs(mix).max(initial=0.0))
    return mix / peak * 0.98 if peak > 0.98 else mix


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("route", choices=("mix", "tracks"))
    ap.add_argument("tracks", nargs="+", help="FILE@OFFSET_S")
    ap.add_argument("--model", required=True)
    ap.add_argument("--compute-type", default="int8")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--threads", type=int, default=0, help="0: faster-whisper's default")
    ap.add_argument("--beam-size", type=int, default=1)
    ap.add_argument("--language", default="en")
    args = ap.parse_args()
    tracks = [(t.rpartition("@")[0], float(t.rpartition("@")[2])) for t in args.tracks]
    t0 = time.perf_counter()
    model = WhisperModel(
        args.model,
        device=args.device,
        compute_type=args.compute_type,
        cpu_threads=args.threads,
        local_files_only=True,
    )
    load = time.perf_counter() - t0
    if args.route == "mix":
        audio = _mix(tracks)
        prep = time.perf_counter() - t0 - load
        words = _transcribe(model, audio, args)
    else:
        prep = 0.0
        words = sum(_transcribe(model, path, args) for path, _ in tracks)
    total = time.perf_counter() - t0
    print(json.dumps({"load_s": load, "mix_s": prep, "total_s": total, "words": words}))


if __name__ == "__main__":
    main()
