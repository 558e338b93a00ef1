"""One process per recording: an advisory file lock in the data dir, held for a run's life."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator

from reflector_cli.config import Settings
from reflector_cli.errors import UserError


@contextlib.contextmanager
def recording_lock(settings: Settings, recording_id: str) -> Iterator[None]:
    """One process per recording at a time; the lock dies with its process (kill -9 safe)."""
    lock_dir = settings.data_dir / ".locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / f"{recording_id}.lock", "a+") as fh:
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
