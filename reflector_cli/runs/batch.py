"""Several recordings in one command, pipelined: at most `parallel` in flight, all local runs on
one shared worker pool, so one recording's light stages overlap another's ASR.

Each recording goes through `runs.process.process_recording` on its own thread, with its own
lock, run rows and result; a recording that fails (or is refused) never stops the others.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from reflector_cli.core import lifeline
from reflector_cli.core.config import Settings
from reflector_cli.core.errors import ReflectorError, one_line
from reflector_cli.providers.local import StagePool, using_pool
from reflector_cli.runs.process import ProcessResult, process_recording
from reflector_cli.store.events import Observer

# After a stop, how long the recordings' threads get to record their runs as interrupted (each
# sees the stop at its scheduler's next tick, 0.2 s; a thread still waiting on a source's API
# is left: its run, if any, reads as interrupted once no process holds the recording's lock).
STOP_WAIT_S = 15.0


def default_parallel(workers: int | None = None) -> int:
    """Recordings in flight by default: half the workers, at least 2.

    Two are enough to fill the cores while one recording is in its light stages (source, LLM,
    finalize: one thread) and the other in ASR; past that, the shared pool already bounds the
    heavy work to one stage per worker, and each more recording in flight only adds memory
    (its decoded tracks, its light threads). A recording of k tracks keeps at most k workers
    busy, so with many cores about workers/2 meetings of 2-4 tracks keep them all fed."""
    return max(2, (workers or os.cpu_count() or 1) // 2)


@dataclass
class BatchItem:
    index: int
    source: str
    result: ProcessResult | None = None
    refused: str | None = None  # no run: bad input, lock held, or stopped before it started

    @property
    def ok(self) -> bool:
        return self.result is not None and self.result.ok


@dataclass
class Batch:
    settings: Settings
    provider: str | None = None
    force: bool = False
    deliver: bool = True
    shadow: str | None = None
    parallel: int | None = None
    observer_for: Callable[[int, str], Observer | None] = lambda _i, _s: None
    share: StagePool | None = None
    _same: dict[str, threading.Lock] = field(default_factory=dict)

    def run(self, sources: list[str], on_done: Callable[[BatchItem], None]) -> None:
        """Process every source; `on_done` sees each item in this (the main) thread as it
        finishes. A stop signal stops every run (recorded as interrupted) and is re-raised."""
        local = (self.provider or self.settings.provider) == "local"
        # Engine providers: one at a time unless asked (their submitters were never run from
        # several threads of one process; their workers spread the stages anyway).
        parallel = self.parallel or (default_parallel(self.settings.workers) if local else 1)
        parallel = max(1, min(parallel, len(sources)))
        if local:
            self.share = StagePool(self.settings.workers)
        # The executor queues the rest in order: started in order, `parallel` at a time.
        pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="recording")
        futures = [pool.submit(self._one, i, src) for i, src in enumerate(sources)]
        try:
            pending: set[Future[BatchItem]] = set(futures)
            while pending:
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for fut in sorted(done, key=futures.index):
                    on_done(fut.result())
        except BaseException as exc:
            # A stop signal, or reporting a result failed (e.g. --output-dir unwritable): the
            # runs still going are stopped and recorded as interrupted, then the error goes up.
            stop = (
                exc if isinstance(exc, KeyboardInterrupt) else KeyboardInterrupt(one_line(str(exc)))
            )
            with lifeline.deferred_stop_signals():
                self._stop(futures, stop)
            raise
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
            if self.share is not None and self.share.stopped is None:
                self.share.close()

    def _one(self, index: int, source: str) -> BatchItem:
        # The same folder given twice runs twice in turn (the second reuses the first's result)
        # instead of finding its recording's lock held by this very process.
        with self._same.setdefault(os.path.realpath(source), threading.Lock()):
            return self._locked(index, source)

    def _locked(self, index: int, source: str) -> BatchItem:
        if self.share is not None and self.share.stopped is not None:
            return BatchItem(index, source, refused="not started: interrupted")
        try:
            with using_pool(self.share):
                res = process_recording(
                    source,
                    self.settings,
                    provider=self.provider,
                    force=self.force,
                    deliver=self.deliver,
                    observer=self.observer_for(index, source),
                    shadow=self.shadow,
                )
        except ReflectorError as exc:
            return BatchItem(index, source, refused=one_line(str(exc)))
        except Exception as exc:  # noqa: BLE001 - one recording's crash must not stop the rest
            why = f"unexpected {type(exc).__name__}: {exc}"
            return BatchItem(index, source, refused=one_line(why))
        return BatchItem(index, source, res)

    def _stop(self, futures: list[Future[BatchItem]], exc: BaseException) -> None:
        """Nothing new starts; running local runs see the stop, record it and end."""
        for fut in futures:
            fut.cancel()
        if self.share is None:
            return  # engine runs go on without their submitter; the same command follows them
        self.share.stop(exc)
        wait([f for f in futures if not f.cancelled()], timeout=STOP_WAIT_S)
