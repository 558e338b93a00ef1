"""A burst of triggered runs, bounded: real child processes, the real claim table — `limit`
alive at once, the rest queued and started in claim order, each exactly once."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from reflector_cli.core.config import load_settings
from reflector_cli.intake.startqueue import StartQueue
from reflector_cli.intake.triggers import _reap, fire
from reflector_cli.store.repo import Store
from reflector_cli.store.triggers import Triggers

# A child that says it started, then waits until the test lets it go.
CHILD = (
    "import os, sys, time\n"
    "rid, d = sys.argv[1], sys.argv[2]\n"
    "open(os.path.join(d, rid + '.started'), 'w').close()\n"
    "while not os.path.exists(os.path.join(d, rid + '.go')):\n"
    "    time.sleep(0.02)\n"
)


class Children:
    """The trigger: one real process per recording id, reaped like subprocess_trigger's."""

    def __init__(self, db_path: Path, work: Path) -> None:
        self.db_path, self.work = db_path, work
        self.calls: list[str] = []

    def __call__(self, rid: str) -> int:
        self.calls.append(rid)
        proc = subprocess.Popen([sys.executable, "-c", CHILD, rid, str(self.work)])
        threading.Thread(target=_reap, args=(proc, self.db_path, rid), daemon=True).start()
        return proc.pid

    def started(self, rid: str) -> bool:
        return (self.work / f"{rid}.started").exists()

    def let_go(self, rid: str) -> None:
        (self.work / f"{rid}.go").touch()


def _until(cond: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 60
    while not cond():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.02)


def _statuses(store: Store) -> dict[str, str]:
    return {r["recording_id"]: r["status"] for r in Triggers(store).all()}


def test_a_burst_starts_limit_runs_then_the_rest_in_claim_order_once_each(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "data")
    kids = Children(settings.db_path, tmp_path)
    queue = StartQueue(settings, kids, limit=2)
    rids = [f"rec-{i}" for i in range(5)]
    store = Store(settings.db_path)
    try:
        assert all(fire(store, rid, "webhook", queue) for rid in rids)
        assert not fire(store, "rec-0", "webhook", queue)  # a redelivery starts nothing
        _until(lambda: kids.started("rec-0") and kids.started("rec-1"), "first two started")
        assert kids.calls == ["rec-0", "rec-1"]
        assert _statuses(store) == {
            "rec-0": "started",
            "rec-1": "started",
            "rec-2": "queued",
            "rec-3": "queued",
            "rec-4": "queued",
        }
        for done, nxt in zip(rids, rids[2:], strict=False):
            kids.let_go(done)
            _until(lambda nxt=nxt: kids.started(nxt), f"{nxt} started")
            # Still two alive: the next queued one waits.
            assert kids.calls == rids[: rids.index(nxt) + 1]
        for rid in rids[3:]:
            kids.let_go(rid)
        _until(lambda: set(_statuses(store).values()) == {"ended"}, "every run ended")
        assert kids.calls == rids  # in claim order, each exactly once
    finally:
        store.close()


def test_runs_queued_by_a_server_that_stopped_are_started_by_the_next(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "data")
    store = Store(settings.db_path)
    try:
        book = Triggers(store)
        for rid in ("rec-a", "rec-b"):
            assert book.claim(rid, "webhook")
            book.queue(rid)
        kids = Children(settings.db_path, tmp_path)
        StartQueue(settings, kids, limit=1)
        _until(lambda: kids.started("rec-a"), "rec-a started")
        assert kids.calls == ["rec-a"]
        kids.let_go("rec-a")
        _until(lambda: kids.started("rec-b"), "rec-b started")
        kids.let_go("rec-b")
        _until(lambda: set(_statuses(store).values()) == {"ended"}, "both ended")
        assert kids.calls == ["rec-a", "rec-b"]
    finally:
        store.close()
