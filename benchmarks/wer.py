"""WER speed: `word_error_rate` on synthetic transcripts of 2,000 and 10,000 words (about a
one-hour meeting), 10% substitutions plus a deletion and an insertion run.

    .venv/bin/python benchmarks/wer.py
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reflector_cli.core.textmetrics import word_error_rate  # noqa: E402


def pair(n: int, seed: int = 1) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(300)]
    ref = [rng.choice(vocab) for _ in range(n)]
    hyp = [w if rng.random() > 0.1 else rng.choice(vocab) for w in ref]
    del hyp[100:120]
    hyp[500:500] = ["extra"] * 15
    return ref, hyp


def main() -> None:
    word_error_rate(["warm"], ["up"])
    for n in (2_000, 10_000):
        ref, hyp = pair(n)
        t0 = time.perf_counter()
        wer = word_error_rate(ref, hyp)
        print(f"{n:>6} words: WER {wer:.4f} in {time.perf_counter() - t0:.4f} s")


if __name__ == "__main__":
    main()
