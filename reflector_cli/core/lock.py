"""Advisory file locks: one process per recording (in the data dir), and a lock on any path
taken only when free."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from reflector_cli.core.config import Settings
from reflector_cli.core.errors import UserError


def lock_path(settings: Settings, recording_id: str) -> Path:
    return settings.data_dir / ".locks" / f"{recording_id}.lock"


@contextlib.contextmanager
def recording_lock(settings: Settings, recording_id: str) -> Iterator[None]:
    """One process per recording at a time; the lock dies with its process (kill -9 safe)."""
    path = lock_path(settings, recording_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise UserError(
                f"recording {recording_id}: already being processed by pid {holder}"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        yield


@contextlib.contextmanager
def lock_if_free(settings: Settings, recording_id: str) -> Iterator[bool]:
    """Hold the recording's lock for the block if nobody does; yields whether we got it."""
    path = lock_path(settings, recording_id)
    if not path.exists():
        yield True
        return
    with flock_if_free(path) as held:
        yield held


@contextlib.contextmanager
def flock_if_free(path: Path) -> Iterator[bool]:
    """An exclusive lock on `path` (created if missing) for the block, taken without waiting;
    yields whether this process holds it. It dies with its process (kill -9 safe)."""
    with open(path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
