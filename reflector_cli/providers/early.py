"""Start the local provider's worker processes as the CLI starts, for `reflector process`:
their interpreter, imports and model load then overlap the CLI's own ~1 s of imports and
input checks instead of following them. Decided from argv and the environment alone (the
settings do not exist yet); a guess that turns out unneeded costs idle workers, let go at exit.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from reflector_cli.core import envnames

# What a worker's first tasks import (pad_track, transcribe_track and its model).
PRELOAD = (
    "reflector_cli.providers.local_task",
    "reflector_cli.stages.audio",
    "reflector_cli.stages.asr",
    "faster_whisper",
)
# Called in each early worker once the imports are done: loads the model of the settings the
# worker reads itself (environment and .env), so it is ready before the CLI hands work over.
WARM = "reflector_cli.providers.local_task:warm_from_settings"
# Flags that change which model is loaded: the worker cannot see them, so it does not guess.
_MODEL_FLAGS = ("--model", "--compute-type", "--threads", "--device")
# Flags after which `process` runs no local stage, or only prints.
_NOT_LOCAL = {"--dry-run", "--no-wait", "--help", "-h", "--shadow"}
# The app's options that may stand before the command (`reflector -q process …`).
_GLOBAL_FLAGS = {"-v", "--verbose", "-q", "--quiet"}


def _flag(argv: Sequence[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.partition("=")[2]
    return None


def command_argv(argv: Sequence[str]) -> list[str]:
    """`argv` from the command name on: the global flags before it skipped."""
    i = 0
    while i < len(argv) and argv[i] in _GLOBAL_FLAGS:
        i += 1
    return list(argv[i:])


def worker_count(argv: Sequence[str]) -> int:
    """How many workers `process` with these arguments will run locally (0: none)."""
    if argv[:1] != ["process"] or _NOT_LOCAL & set(argv):
        return 0
    provider = _flag(argv, "--provider") or os.environ.get(envnames.PROVIDER, "local")
    shadow = os.environ.get(envnames.SHADOW_MODE, "").lower() in envnames.TRUE_WORDS
    if provider != "local" or shadow:
        return 0
    raw = _flag(argv, "--workers") or os.environ.get(envnames.WORKERS)
    if raw is None:
        return os.cpu_count() or 1
    return int(raw) if raw.isdigit() else 0  # a bad value is the settings' error to report


def warm_hook(argv: Sequence[str]) -> str | None:
    """The warm-up early workers run, or None when a flag picks the model (they cannot tell)."""
    return None if any(_flag(argv, f) is not None for f in _MODEL_FLAGS) else WARM


def start_for(argv: Sequence[str]) -> None:
    """Start the early workers `reflector` with these arguments (global flags included) needs."""
    if os.environ.get("REFLECTOR_EARLY_WORKERS", "1") == "0":
        return
    argv = command_argv(argv)
    count = worker_count(argv)
    if count:
        from reflector_cli.providers.workerpool import spawn_early

        spawn_early(count, PRELOAD, warm_hook(argv))
