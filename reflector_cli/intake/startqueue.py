"""A bound on triggered runs alive at once: a burst of webhooks starts `limit` runs, the rest
wait in the claim table (status `queued`) and start in claim order, each exactly once."""

from __future__ import annotations

import logging
import threading
import time

from reflector_cli.core.config import Settings
from reflector_cli.intake.triggers import Trigger
from reflector_cli.store.repo import Store
from reflector_cli.store.triggers import Triggers

log = logging.getLogger("reflector.triggers")

PUMP_INTERVAL_S = 0.5


class StartQueue:
    """A Trigger that starts `start(recording_id)` only while fewer than `limit` triggered runs
    of this data dir are alive (any server's or poll's: counted from the claim table); queued
    runs survive a restart, and the next server starts them."""

    def __init__(self, settings: Settings, start: Trigger, limit: int) -> None:
        self.db_path, self.start, self.limit = settings.db_path, start, max(1, limit)
        self._lock = threading.Lock()  # one check-then-start at a time in this process
        self._pump: threading.Thread | None = None
        self.kick()  # queued by a server that stopped before starting them

    def __call__(self, recording_id: str) -> int | None:
        store = Store(self.db_path)
        try:
            book = Triggers(store)
            with self._lock:
                if not book.queued() and book.running() < self.limit:
                    return self._start(book, recording_id)
                book.queue(recording_id)
        finally:
            store.close()
        log.info("recording %s: queued (%d runs at once)", recording_id, self.limit)
        self.kick()
        return None

    def _start(self, book: Triggers, recording_id: str) -> int | None:
        pid = self.start(recording_id)
        book.started(recording_id, pid)  # counted as running before the lock is let go
        return pid

    def kick(self) -> None:
        with self._lock:
            if self._pump is None:
                self._pump = threading.Thread(target=self._run, name="start-queue", daemon=True)
                self._pump.start()

    def _run(self) -> None:
        """Start queued runs as places free, oldest claim first; end when none is left."""
        while True:
            time.sleep(PUMP_INTERVAL_S)
            store = Store(self.db_path)
            try:
                if not self._pump_once(Triggers(store)):
                    return
            except Exception:  # noqa: BLE001 - a failed pass must not drop the queue
                log.exception("start queue: pass failed; trying again")
            finally:
                store.close()

    def _pump_once(self, book: Triggers) -> bool:
        """One pass; False when nothing is queued any more."""
        with self._lock:
            for recording_id in book.queued():
                if book.running() >= self.limit:
                    return True
                if not book.take(recording_id):
                    continue  # another server took it
                try:
                    self._start(book, recording_id)
                except Exception:  # noqa: BLE001 - this one failed to start; the rest go on
                    log.exception("recording %s: could not start", recording_id)
                    book.release(recording_id)
            if book.queued():
                return True
            self._pump = None  # under the lock: a run queued from now on starts a new pump
            return False
