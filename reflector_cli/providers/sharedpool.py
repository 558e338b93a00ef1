"""One worker pool shared by several recordings' local runs: heavy-stage slots bounded across
all of them, each worker's model loaded once, every event routed back to the run that sent it.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

from reflector_cli.core import lifeline
from reflector_cli.providers.workerpool import WorkerPool

# ------------------------------------------------------------------ worker side

_tag: int | None = None  # the lease whose task this worker runs now (one task at a time)


class _TaggedOutbox:
    """What a stage emits goes up tagged with its lease, so the right run records it."""

    def __init__(self, outbox: Any) -> None:
        self.outbox = outbox

    def put(self, item: Any) -> None:
        self.outbox.put((_tag, item))


def _init_tagged(outbox: Any, init: Callable[..., None], *args: Any) -> None:
    init(_TaggedOutbox(outbox), *args)


def _tagged(tag: int | None, fn: Callable[..., Any], *args: Any) -> Any:
    global _tag
    _tag = tag
    try:
        return fn(*args)
    finally:
        _tag = None


# ------------------------------------------------------------------ scheduler side


class _Events:
    """A lease's event queue as the local provider reads it (`get_nowait`); once the share is
    stopped (Ctrl-C, SIGTERM) reading raises the stop in the run's own thread, so the run is
    recorded as interrupted by its own driver."""

    def __init__(self, share: SharedPool, tag: int) -> None:
        self.share, self.tag = share, tag
        self.items: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def get_nowait(self) -> Any:
        self.share.raise_if_stopped()
        self.share.route()
        return self.items.get_nowait()


class Lease:
    """One run's view of the shared pool, with WorkerPool's interface (submit, kill, close,
    events). `reserve()` takes a heavy slot for the next `submit`; the run gives it back with
    `finished(fut)` once it has recorded that task's end, or all of them at `close`."""

    def __init__(self, share: SharedPool, tag: int) -> None:
        self.share, self.tag = share, tag
        self.events = _Events(share, tag)
        self._reserved = 0
        self._slots: set[Future[Any]] = set()  # submitted tasks holding a slot
        self._futures: set[Future[Any]] = set()
        self._flock = threading.Lock()  # done-callbacks run on the pool's feed threads

    def reserve(self) -> bool:
        if not self.share.take_slot():
            return False
        self._reserved += 1
        return True

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        fut = self.share.pool.submit(_tagged, self.tag, fn, *args)
        if self._reserved:
            self._reserved -= 1
            self._slots.add(fut)
        with self._flock:
            self._futures.add(fut)
        fut.add_done_callback(self._done)
        return fut

    def _done(self, fut: Future[Any]) -> None:
        with self._flock:
            self._futures.discard(fut)

    def finished(self, fut: Future[Any]) -> None:
        if fut in self._slots:
            self._slots.discard(fut)
            self.share.give_slot()

    def kill(self, fut: Future[Any], reason: str) -> bool:
        return self.share.pool.kill(fut, reason)

    def close(self, kill: bool = False) -> None:
        """The shared workers stay; an interrupted (or crashed) run ends its own tasks."""
        for _ in range(self._reserved + len(self._slots)):
            self.share.give_slot()
        self._reserved = 0
        self._slots.clear()
        if kill:
            with self._flock:
                running = list(self._futures)
            for fut in running:
                if not fut.cancel():
                    self.share.pool.kill(fut, "interrupted")
        self.share.forget(self.tag)


class SharedPool:
    """`size` workers for every run of one command; at most `size` heavy stages at once."""

    def __init__(self, size: int, init: Callable[..., None], init_args: tuple = ()) -> None:
        self.size = size
        self.pool = WorkerPool(size, _init_tagged, (init, *init_args))
        self._lock = threading.Lock()
        self._busy = 0
        self._leases: dict[int, Lease] = {}
        self._ids = itertools.count(1)
        self._warmed: set[str] = set()
        self.stopped: BaseException | None = None
        self.most_busy = 0  # the most heavy slots taken at once (what a test can check)

    def lease(self) -> Lease:
        with self._lock:
            lease = Lease(self, next(self._ids))
            self._leases[lease.tag] = lease
        return lease

    def forget(self, tag: int) -> None:
        with self._lock:
            self._leases.pop(tag, None)

    def take_slot(self) -> bool:
        with self._lock:
            if self._busy >= self.size:
                return False
            self._busy += 1
            self.most_busy = max(self.most_busy, self._busy)
            return True

    def give_slot(self) -> None:
        with self._lock:
            self._busy = max(0, self._busy - 1)

    def warm(self, fn: Callable[..., Any], options: Any) -> None:
        """Load the model in every worker once per distinct options (not once per run)."""
        key = repr(options)
        with self._lock:
            if key in self._warmed:
                return
            self._warmed.add(key)
        for _ in range(self.size):
            self.pool.submit(_tagged, None, fn, options)

    def route(self) -> None:
        """Move every event that arrived to its lease's queue (the pool puts a task's events
        before its reply, so a run that sees its future done finds that task's events)."""
        with self._lock:
            while True:
                try:
                    tag, item = self.pool.events.get_nowait()
                except queue.Empty:
                    return
                lease = self._leases.get(tag)
                if lease is not None:
                    lease.events.items.put(item)

    def stop(self, exc: BaseException) -> None:
        """Every run reading its events from now on stops with `exc`'s kind; then the workers
        are killed so running stages end at once."""
        self.stopped = exc
        self.pool.close(kill=True)

    def raise_if_stopped(self) -> None:
        exc = self.stopped
        if exc is None:
            return
        if isinstance(exc, lifeline.Interrupted):
            raise lifeline.Interrupted(exc.signum)
        raise KeyboardInterrupt(*exc.args)

    def close(self) -> None:
        if self.stopped is None:
            self.pool.close()


# The pool a LocalProvider built in this context uses unless given one (a batch of recordings
# sets it in each recording's thread; the run driver in between needs no parameter for it).
_current: contextvars.ContextVar[SharedPool | None] = contextvars.ContextVar(
    "shared_pool", default=None
)


def current() -> SharedPool | None:
    return _current.get()


@contextlib.contextmanager
def using(share: SharedPool | None) -> Iterator[None]:
    token = _current.set(share)
    try:
        yield
    finally:
        _current.reset(token)
