"""Exactly-once starts for recordings discovered outside the CLI (Daily webhook, `poll`).

Whoever inserts a recording's row in the `triggers` table first starts its run; everyone else
(a redelivered webhook, a poll racing the webhook, a second server) sees the row and does nothing.
Only a run whose process failed may be claimed again, later and a bounded number of times.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from reflector_cli.core.config import Settings
from reflector_cli.store.repo import Store
from reflector_cli.store.triggers import Triggers

log = logging.getLogger("reflector.triggers")

# Starts processing of one recording id; returns the pid of the process doing it, if any.
Trigger = Callable[[str], int | None]

# Daily ids are UUIDs; anything path-like or option-like must never reach `reflector process`.
_RECORDING_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")


def valid_recording_id(recording_id: str) -> bool:
    return bool(_RECORDING_ID.match(recording_id))


def fire(
    store: Store,
    recording_id: str,
    via: str,
    trigger: Trigger,
    *,
    max_attempts: int = 3,
    retry_after_s: float = 600,
) -> bool:
    """Claim `recording_id` and start it; False when it was already claimed.

    A trigger that fails to *start* releases the claim and re-raises (the caller answers 5xx,
    Daily redelivers); what happens to the run afterwards is the run's own business."""
    book = Triggers(store)
    if not book.claim(recording_id, via, max_attempts, retry_after_s):
        return False
    try:
        pid = trigger(recording_id)
    except BaseException:
        book.release(recording_id)
        raise
    book.started(recording_id, pid)
    return True


def subprocess_trigger(settings: Settings) -> Trigger:
    """Run `reflector process <id>` as a detached child, so a crash in it can't take down the
    server; its output goes to `<data_dir>/.triggers/<id>.log`."""
    data_dir = Path(settings.data_dir).resolve()
    logs = data_dir / ".triggers"

    def start(recording_id: str) -> int:
        if not valid_recording_id(recording_id):
            raise ValueError(f"refusing to start unsafe recording id {recording_id!r}")
        logs.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-c",
            "from reflector_cli.cli import main; main()",
            "process",
            "--data-dir",
            str(data_dir),
            "--provider",
            settings.provider,
            "--",
            recording_id,
        ]
        with open(logs / f"{recording_id}.log", "ab") as out:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # our Ctrl-C must not kill a run half way
            )
        log.info("recording %s: started pid %s", recording_id, proc.pid)
        threading.Thread(
            target=_reap, args=(proc, settings.db_path, recording_id), daemon=True
        ).start()
        return proc.pid

    return start


def _reap(proc: subprocess.Popen[bytes], db_path: Path, recording_id: str) -> None:
    rc = proc.wait()
    store = Store(db_path)
    try:
        status = "ended" if rc == 0 else "failed"
        detail = None if rc == 0 else f"exit {rc}"
        Triggers(store).mark(recording_id, status, pid=proc.pid, detail=detail)
    finally:
        store.close()
    log.info("recording %s: process exited %s", recording_id, rc)
