"""Worker processes for heavy stages: one task at a time each, killable one by one.

Unlike a ProcessPoolExecutor, a worker over its stage's timeout can be killed and replaced
without breaking the others, and every worker dies with the process that started it.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from multiprocessing.connection import Connection, Pipe
from typing import Any

from reflector_cli.core import lifeline
from reflector_cli.core.errors import UserError
from reflector_cli.providers.forked import ForkedProc, fork_siblings

Task = tuple[Callable[..., Any], tuple[Any, ...]]


class WorkerDied(RuntimeError):
    """The worker process running a task ended before answering (killed, crashed, timed out)."""


class RemoteError(Exception):
    """A task's exception, carried across the process boundary as its one-line description."""

    def __init__(self, message: str, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class Outbox:
    """The worker side of the event stream: items go up the task pipe, between replies (no
    multiprocessing.Queue, so nothing for the resource tracker to clean up after a kill)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.lock = threading.Lock()

    def put(self, item: Any) -> None:
        self.send(("event", item))

    def send(self, msg: tuple[str, Any]) -> None:
        with self.lock:  # a stage may emit from its own threads
            self.conn.send(msg)


def child_main() -> None:
    """A worker's entry point (argv: pipe fd, parent pid, modules to import, warm-up hook,
    pipe fds of workers to fork): bind to the parent before anything else, then run each task
    received and answer with its result or its error."""
    fd, parent_pid = int(sys.argv[1]), int(sys.argv[2])
    siblings = [int(x) for x in sys.argv[5].split(",") if x] if len(sys.argv) > 5 else []
    # Ctrl-C reaches the whole process group; the parent decides what stops (and kills us).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    lifeline.bind_to_parent(parent_pid, watch=not siblings)  # no watchdog thread in a fork
    # Started early (spawn_early): import what the tasks will need while the parent still
    # imports and validates, then run the warm-up hook if given (e.g. load the model); a
    # failure here fails its task later, with its error.
    for module in filter(None, sys.argv[3].split(",") if len(sys.argv) > 3 else []):
        with contextlib.suppress(Exception):
            importlib.import_module(module)
    forked = False
    if siblings:
        fd, forked = fork_siblings(fd, siblings, parent_pid)
        lifeline.watch_parent(parent_pid)
    conn = Connection(fd)
    if forked:  # the parent's ForkedProc learns whom it drives
        try:
            conn.send(("pid", os.getpid()))
        except OSError:  # let go before we could say it
            _exit_now()
    if len(sys.argv) > 4 and sys.argv[4]:
        module, _, attr = sys.argv[4].partition(":")
        with contextlib.suppress(Exception):
            getattr(importlib.import_module(module), attr)()
    outbox = Outbox(conn)
    try:
        init, init_args = conn.recv()
    except (EOFError, OSError):  # an early worker no pool adopted
        _exit_now()
    init(outbox, *init_args)
    from reflector_cli.providers.recorder import short_error

    while True:
        try:
            fn, args = conn.recv()
        except (EOFError, OSError):
            _exit_now()
        try:
            reply: tuple[str, Any] = ("ok", fn(*args))
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the scheduler
            reply = ("err", (short_error(exc), isinstance(exc, UserError)))
        outbox.send(reply)


def _exit_now() -> None:
    """End an idle worker at once: every task has answered (its files are written), and a
    normal interpreter exit tearing down the model, CTranslate2's and onnxruntime's threads
    and every module took ~0.5 s of the command's shutdown."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    logging.shutdown()
    os._exit(0)


# A plain interpreter, not multiprocessing's spawn: no re-import of the CLI's __main__ and no
# resource tracker, so the window before the child asks for its parent-death signal is tiny.
_BOOT = "from reflector_cli.providers.workerpool import child_main; child_main()"


class _Worker:
    def __init__(self, conn: Connection, proc: subprocess.Popen[bytes] | ForkedProc) -> None:
        self.conn, self.proc = conn, proc
        self.killed: str | None = None  # why the scheduler killed it (e.g. a timeout)

    @classmethod
    def spawn(
        cls, preload: Sequence[str] = (), warm: str | None = None, forks: int = 0
    ) -> list[_Worker]:
        """One new interpreter, plus `forks` workers it forks once its imports are done."""
        conn, child = Pipe()
        pipes = [Pipe() for _ in range(forks)]
        ends = [child.fileno(), *(theirs.fileno() for _, theirs in pipes)]
        argv = [sys.executable, "-c", _BOOT, str(ends[0]), str(os.getpid())]
        proc = subprocess.Popen(
            [*argv, ",".join(preload), warm or "", ",".join(map(str, ends[1:]))],
            stdin=subprocess.DEVNULL,
            stdout=2,  # stdout is the command's (--json document), never a worker's
            pass_fds=ends,
        )
        child.close()
        for _, theirs in pipes:
            theirs.close()
        return [cls(conn, proc), *(cls(ours, ForkedProc(ours)) for ours, _ in pipes)]

    def start(self, pool: WorkerPool) -> None:
        self.conn.send((pool.init, pool.init_args))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()

    def join(self, timeout: float) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=timeout)


_early: list[_Worker] = []


def spawn_early(count: int, preload: Sequence[str], warm: str | None = None) -> None:
    """Start `count` workers before any pool exists, importing `preload` and then calling
    `warm` ("module:function") meanwhile; the first pool adopts them. One interpreter does the
    imports and forks the others (providers.forked) where this process can adopt them. Call
    from the main thread (their parent-death signal follows the thread that started them).
    Workers no pool took are let go at exit."""
    if not _early:
        atexit.register(_release_early)
    if count > 1 and lifeline.become_subreaper():
        _early.extend(_Worker.spawn(preload, warm, forks=count - 1))
    else:
        _early.extend(w for _ in range(count) for w in _Worker.spawn(preload, warm))


def _adopt_early(pool: WorkerPool) -> _Worker | None:
    while _early:
        try:
            worker = _early.pop(0)
        except IndexError:  # another feed thread took the last one
            return None
        if worker.alive():
            worker.start(pool)
            return worker
        worker.conn.close()
    return None


def _release_early() -> None:
    while _early:
        worker = _early.pop()
        if isinstance(worker.proc, ForkedProc):
            worker.proc.announced(wait_s=0.0)  # a pid already sent: reap the fork below
        worker.conn.close()  # EOF: the idle worker exits at once (_exit_now)
        worker.join(timeout=2)


class WorkerPool:
    """`size` worker processes fed from one queue; `submit` returns a Future.

    `init(outbox, *init_args)` runs first in each worker; what it `put`s to the outbox arrives
    in `events` here, before the reply of the task that sent it.
    """

    def __init__(self, size: int, init: Callable[..., None], init_args: tuple = ()) -> None:
        self.init, self.init_args = init, init_args
        self.events: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._tasks: queue.SimpleQueue[tuple[Future[Any], Task] | None] = queue.SimpleQueue()
        self._running: dict[Future[Any], _Worker] = {}
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._feed, name=f"pool-feed-{i}", daemon=True)
            for i in range(size)
        ]
        for t in self._threads:
            t.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        fut: Future[Any] = Future()
        self._tasks.put((fut, (fn, args)))
        return fut

    def kill(self, fut: Future[Any], reason: str) -> bool:
        """Kill the worker running `fut` (it fails with WorkerDied(reason)); it is replaced."""
        with self._lock:
            worker = self._running.get(fut)
            if worker is None:
                return False
            worker.killed = reason
            worker.kill()
            return True

    def _feed(self) -> None:
        """One worker's lifetime: start it lazily, hand it tasks, replace it when it dies."""
        worker: _Worker | None = None
        while (item := self._tasks.get()) is not None:
            fut, task = item
            if not fut.set_running_or_notify_cancel():
                continue
            fresh = worker is None or not worker.alive()
            if fresh:  # outside the lock: a fork may take a moment to say its pid
                worker = _adopt_early(self)
            with self._lock:
                if self._closed:
                    fut.set_exception(WorkerDied("pool closed"))
                    continue
                if worker is None:
                    worker = _Worker.spawn()[0]
                    worker.start(self)
                if fresh:
                    self._workers.append(worker)
                self._running[fut] = worker
            try:
                worker.conn.send(task)
                kind, value = self._reply(worker)
            except (EOFError, OSError):
                worker.join(timeout=5)
                why = worker.killed or f"worker exited with code {worker.proc.returncode}"
                fut.set_exception(WorkerDied(why))
                worker = None
                continue
            finally:
                with self._lock:
                    self._running.pop(fut, None)
            if kind == "ok":
                fut.set_result(value)
            else:
                fut.set_exception(RemoteError(*value))
        if worker is not None:
            worker.conn.close()
            worker.join(timeout=5)

    def _reply(self, worker: _Worker) -> tuple[str, Any]:
        while True:
            kind, value = worker.conn.recv()
            if kind != "event":
                return kind, value
            self.events.put(value)

    def close(self, kill: bool = False) -> None:
        """Stop the workers: after their current task, or at once (`kill`, e.g. Ctrl-C)."""
        with self._lock:
            self._closed = True
            workers = list(self._workers)
        while True:
            try:
                item = self._tasks.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                item[0].cancel()
        if kill:
            for w in workers:
                w.killed = "interrupted"
                w.kill()
        for _ in self._threads:
            self._tasks.put(None)
        for t in self._threads:
            t.join(timeout=None if not kill else 5)
        for w in workers:
            w.join(timeout=5)
