"""The local provider: the shared scheduler with this machine as the executor.

Heavy stages run in worker processes (`StagePool`: one whisper model per worker, tracks in
parallel up to the cores), light ones on threads here; the scheduler in this process is the
only SQLite writer, checkpointing each finished stage so a killed run resumes where it stopped.
A `StagePool` may be shared by several runs (several recordings at once): see `using_pool`.
"""

from __future__ import annotations

import contextlib
import contextvars
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from pydantic import BaseModel

from reflector_cli.core import lifeline
from reflector_cli.core import models as m
from reflector_cli.core.config import Settings
from reflector_cli.core.errors import UserError
from reflector_cli.pipeline import dag
from reflector_cli.pipeline.execute import run_stage, warm_up
from reflector_cli.providers.local_task import init_worker, pool_task
from reflector_cli.providers.recorder import Event, Recorder, Started, short_error
from reflector_cli.providers.scheduler import Completion, Node, RunOutcome, Scheduler
from reflector_cli.providers.workerpool import RemoteError, WorkerDied, WorkerPool

__all__ = ["LocalProvider", "RunOutcome", "StagePool"]


class StagePool:
    """Worker processes for heavy stages, which several runs may share: each worker's events
    are routed to their run, and at most `heavy` heavy stages (default: one per worker) run
    at once across all of them."""

    def __init__(self, workers: int, heavy: int | None = None) -> None:
        self.workers = workers
        self._pool: WorkerPool | None = None
        self._slots = threading.BoundedSemaphore(heavy or workers)
        self._lock = threading.Lock()
        self._routed: dict[str, list[Event]] = defaultdict(list)
        self._warm = False
        self.stopped: BaseException | None = None  # see stop()

    def _get(self) -> WorkerPool:
        self._raise_if_stopped()  # no new workers once the owner stopped
        with self._lock:
            if self._pool is None:
                self._pool = WorkerPool(self.workers, init_worker)
            return self._pool

    def warm(self, asr: m.AsrOptions) -> None:
        """Start every worker and load the model now (once per pool)."""
        pool = self._get()
        with self._lock:
            if self._warm:
                return
            self._warm = True
        for _ in range(self.workers):
            pool.submit(warm_up, asr)

    def take_slot(self) -> bool:
        return self._slots.acquire(blocking=False)

    def free_slot(self) -> None:
        self._slots.release()

    def submit(self, run_id: str, name: str, payload: dict[str, Any], *args: Any) -> Future:
        return self._get().submit(pool_task, run_id, name, payload, *args)

    def events(self, run_id: str) -> list[Event]:
        """The events run `run_id`'s stages sent so far (each worker's before its reply)."""
        self._raise_if_stopped()
        if self._pool is None:
            return []
        with self._lock:  # drain and route at once: a run's events stay in order
            while True:
                try:
                    rid, kind, data = self._pool.events.get_nowait()
                except queue.Empty:
                    break
                self._routed[rid].append(Event(type=kind, data=data))
            return self._routed.pop(run_id, [])

    def kill(self, fut: Future, reason: str) -> None:
        if self._pool is not None:
            self._pool.kill(fut, reason)

    def stop(self, exc: BaseException) -> None:
        """A shared pool's owner was stopped (Ctrl-C, SIGTERM): every run reading its events
        from now on stops with `exc`'s kind in its own thread (and records itself interrupted);
        the workers are killed so running stages end at once."""
        self.stopped = exc
        self.close(kill=True)

    def _raise_if_stopped(self) -> None:
        exc = self.stopped
        if exc is None:
            return
        if isinstance(exc, lifeline.Interrupted):
            raise lifeline.Interrupted(exc.signum)
        raise KeyboardInterrupt(*exc.args)

    def close(self, kill: bool = False) -> None:
        """Stop the workers: after their current task, or at once (`kill`)."""
        if self._pool is not None:
            self._pool.close(kill=kill)
            self._pool = None
            self._warm = False


class LocalExecutor:
    """Light stages on threads here, heavy ones in the StagePool (killed past their timeout)."""

    reports_start = False  # a stage starts when handed to a thread or a free worker

    def __init__(self, settings: Settings, log: Recorder, pool: StagePool | None) -> None:
        self.settings = settings
        self.log = log
        self.owned = pool is None  # a shared pool is its owner's to close
        self.pool = pool or StagePool(settings.workers)
        self._threads = ThreadPoolExecutor(max_workers=4, thread_name_prefix="stage")
        self._thread_events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self._futs: dict[Future[dict[str, Any]], Node] = {}
        # Heavy stages: when each must be done (monotonic) and its timeout.
        self._deadlines: dict[Future[dict[str, Any]], tuple[float, float]] = {}
        # Slots of heavy stages whose completion was handed to the scheduler: given back at
        # the next wait, once their end is recorded, so stored stage times never show more
        # heavy stages at once than the pool allows (another run may take the slot at once).
        self._to_free = 0

    def start(self) -> None:
        # Overlap starting the workers and loading the model with the light first stages.
        if "transcribe_track" not in self.log.pinned_stages():
            self.pool.warm(self.log.pipe.asr)

    def submit(self, node: Node, inp: BaseModel, attempt: int, timeout_s: float) -> bool:
        name, track = node
        payload = inp.model_dump(mode="json")
        if dag.stage(name).light:
            fut = self._threads.submit(
                run_stage,
                name,
                payload,
                self.settings,
                track=track,
                attempt=attempt,
                emit_fn=lambda t, d: self._thread_events.put(Event(type=t, data=d)),
            )
            self._futs[fut] = node
            return True
        # The scheduler has recorded every completion it was handed before it submits again,
        # so the slots of those stages are free now (waiting for the next `wait` left a
        # worker idle for up to a tick at every hand-over).
        self._free_slots()
        if not self.pool.take_slot():
            return False
        run_id = self.log.run_id
        fut = self.pool.submit(run_id, name, payload, self.settings, track, attempt)
        self._futs[fut] = node
        self._deadlines[fut] = (time.monotonic() + timeout_s, timeout_s)
        return True

    def _free_slots(self) -> None:
        for _ in range(self._to_free):
            self.pool.free_slot()
        self._to_free = 0

    def wait(self, timeout_s: float) -> list[Started | Event | Completion]:
        self._free_slots()
        if self._futs:
            finished, _ = wait(list(self._futs), timeout=timeout_s, return_when=FIRST_COMPLETED)
        else:
            time.sleep(timeout_s)
            finished = set()
        self._enforce_timeouts()
        items: list[Started | Event | Completion] = list(self._events())
        items.extend(self._completion(fut) for fut in finished)
        return items

    def _events(self) -> list[Event]:
        out = self.pool.events(self.log.run_id)
        while True:
            try:
                out.append(self._thread_events.get_nowait())
            except queue.Empty:
                return out

    def _completion(self, fut: Future[dict[str, Any]]) -> Completion:
        node = self._futs.pop(fut)
        if self._deadlines.pop(fut, None) is not None:
            self._to_free += 1
        try:
            return Completion(node, output=fut.result())
        except BaseException as exc:  # noqa: BLE001 - any stage failure is recorded, not raised
            error = str(exc) if isinstance(exc, RemoteError | WorkerDied) else short_error(exc)
            permanent = isinstance(exc, UserError) or getattr(exc, "permanent", False)
            return Completion(node, error=error, permanent=permanent)

    def _enforce_timeouts(self) -> None:
        """Kill the worker of a heavy stage past its timeout: the attempt fails, and the
        worker is replaced by a fresh process for whatever runs next."""
        now = time.monotonic()
        for fut, (deadline, limit) in list(self._deadlines.items()):
            if now > deadline and not fut.done():
                name, track = self._futs[fut]
                where = name if track is None else f"{name} (track {track})"
                self.pool.kill(fut, f"{where}: timed out after {limit:g} s")
                self._deadlines[fut] = (float("inf"), limit)  # killed once; its end follows

    def close(self, kill: bool) -> None:
        """Stop workers and threads; `kill` (interrupted) ends running stages at once."""
        if self.owned:
            self.pool.close(kill=kill)
        elif kill:
            for fut in self._deadlines:
                self.pool.kill(fut, "interrupted")
        self._free_slots()
        for _ in self._deadlines:
            self.pool.free_slot()
        self._deadlines.clear()
        # A light stage on a thread can't be killed: when interrupted, nobody waits for it.
        self._threads.shutdown(wait=not kill, cancel_futures=True)
        if not kill:
            for event in self._events():
                self.log.apply(event)


class LocalProvider(Scheduler):
    name = "local"

    def __init__(self, settings: Settings, log: Recorder, *, rerun: Iterable[str] = ()) -> None:
        # A batch of recordings (runs.batch) sets its shared pool for each recording's thread
        # (`using_pool`): the run driver in between needs no parameter for it.
        pool = _shared.get()
        super().__init__(settings, log, LocalExecutor(settings, log, pool), rerun=rerun)


_shared: contextvars.ContextVar[StagePool | None] = contextvars.ContextVar(
    "shared_stage_pool", default=None
)


@contextlib.contextmanager
def using_pool(pool: StagePool | None) -> Iterator[None]:
    """LocalProviders built in this block (this thread) use `pool` unless given another."""
    token = _shared.set(pool)
    try:
        yield
    finally:
        _shared.reset(token)
