"""Early workers forked from the first one once its imports are done, so only one interpreter
pays them (~0.5 CPU-s each); the command adopts each fork as its own child (a subreaper), so
any worker can still be killed and replaced alone, and each dies with the command.

The fork happens before the model load, while the first worker has one thread: a fork copies
only the calling thread, and CTranslate2's or a BLAS pool's threads would be missing in the
copy. When the first worker has more, it forks nothing and closes the forks' pipes: the
command then starts those workers itself, as for a worker that died.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from multiprocessing.connection import Connection

from reflector_cli.core import lifeline

# How long the command waits for a fork to say its pid before starting a worker instead.
ANNOUNCE_TIMEOUT_S = 30.0
# How often a fork looks whether the command adopted it yet (the go-between exits at once).
_ADOPTION_POLL_S = 0.0005


def fork_siblings(own: int, siblings: list[int], parent_pid: int) -> tuple[int, bool]:
    """Fork one worker per pipe fd in `siblings`. Returns the fd this process serves from now
    on and whether it is a fork (which must announce its pid first, see ForkedProc)."""
    if len(os.listdir("/proc/self/task")) > 1:
        for fd in siblings:
            os.close(fd)  # EOF: the command starts those workers itself
        return own, False
    for i, fd in enumerate(siblings):
        if _fork_adopted(parent_pid):
            for other in (own, *siblings[i + 1 :]):
                os.close(other)
            return fd, True
        os.close(fd)
    return own, False


def _fork_adopted(parent_pid: int) -> bool:
    """Fork through a go-between that exits at once, so the fork is reparented to the command
    (its subreaper); True in the fork, once adopted and bound to the command's life."""
    mid = os.fork()
    if mid:
        os.waitpid(mid, 0)
        return False
    me = os.getpid()
    if os.fork():
        os._exit(0)
    while os.getppid() == me:
        time.sleep(_ADOPTION_POLL_S)
    lifeline.bind_to_parent(parent_pid, watch=False)  # ends us if the command died meanwhile
    return True


class ForkedProc:
    """A fork the command adopted, driven like a subprocess.Popen: its pid arrives as the first
    message on its pipe, and the command reaps it as its child."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.pid: int | None = None
        self.returncode: int | None = None
        self._lock = threading.Lock()  # as Popen's: one waitpid or kill at a time
        _pending.add(self)

    def announced(self, wait_s: float = ANNOUNCE_TIMEOUT_S) -> bool:
        """Whether the fork said its pid (waiting up to `wait_s` for it); a fork that never
        will (not forked, gone, let go) counts as ended."""
        with self._lock:
            return self._announced(wait_s)

    def _announced(self, wait_s: float) -> bool:
        if self.pid is None and self.returncode is None:
            try:
                kind, pid = self.conn.recv() if self.conn.poll(wait_s) else ("", None)
            except (EOFError, OSError):
                kind, pid = "", None
            if kind == "pid":
                self.pid = pid
            elif wait_s > 0 or self.conn.closed:
                self.returncode = -1
                self.conn.close()
            if self.pid is not None or self.returncode is not None:
                _settled(self)
        return self.pid is not None

    def poll(self) -> int | None:
        if self.returncode is None and self.announced():
            with self._lock:
                self._reap()
        return self.returncode

    def _reap(self) -> None:
        if self.returncode is not None or self.pid is None:
            return
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:  # reaped by someone else: gone all the same
            self.returncode = -1
        else:
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)

    def kill(self) -> None:
        if self.poll() is None:
            with self._lock:
                self._reap()
                if self.returncode is None and self.pid is not None:
                    os.kill(self.pid, signal.SIGKILL)  # not reaped yet: still our child

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired("worker", timeout or 0.0)
            time.sleep(0.01)
        return code


_pending: set[ForkedProc] = set()
_pending_lock = threading.Lock()


def _settled(proc: ForkedProc) -> None:
    """Once every fork is adopted (or will never be), the command stops adopting orphans: a
    descendant orphaned later (a killed worker's child) goes to init, which reaps it."""
    with _pending_lock:
        _pending.discard(proc)
        if not _pending:
            lifeline.become_subreaper(False)
