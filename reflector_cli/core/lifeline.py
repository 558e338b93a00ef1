"""Process lifetime: children that die with their parent, and SIGTERM/SIGHUP handled like Ctrl-C.

No process a command starts may outlive it: a killed parent can run no cleanup, so each child
asks the kernel for a parent-death signal and also watches its parent pid from a thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
WATCH_INTERVAL_S = 0.25
# Set in the environment of a child that must end when the process `pid` goes away (`serve`
# starting `reflector process`): the child cannot rely on pdeathsig across an exec'd thread.
PARENT_ENV = "REFLECTOR_PARENT_PID"


class Interrupted(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP: stop like Ctrl-C (the run is recorded as interrupted)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


# The first stop signal this process got (the CLI framework turns the exception into an exit
# code, so the entry point reads the signal from here).
stopped_by: int | None = None


def _raise_interrupted(signum: int, _frame: FrameType | None) -> None:
    global stopped_by
    stopped_by = stopped_by or signum
    raise Interrupted(signum)


def _exit_now(signum: int, _frame: FrameType | None) -> None:
    os._exit(128 + signum)


def exit_on_stop_signals() -> None:
    """While the CLI is still importing (nothing started, nothing to record), a stop signal
    ends the process at once: an exception inside a half-imported C extension can hang the
    interpreter's exit. Not in multiprocessing children, whose libraries set their own."""
    if "--multiprocessing-fork" in getattr(sys, "orig_argv", sys.argv):
        return
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit_now)


def handle_stop_signals() -> None:
    """SIGINT, SIGTERM and SIGHUP raise Interrupted in the main thread (call from there)."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_interrupted)


def _prctl(option: int, value: int) -> bool:
    """Linux's prctl(option, value); False where unsupported or refused."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def set_pdeathsig(sig: int = signal.SIGKILL) -> bool:
    """Ask Linux to send `sig` when our parent (thread) dies; False where unsupported."""
    return _prctl(PR_SET_PDEATHSIG, int(sig))


# A handled signal (SIGTERM: clean shutdown) gets this long before the process is ended hard.
STOP_GRACE_S = 2.0


def _die(sig: int) -> None:
    with contextlib.suppress(OSError):
        os.kill(os.getpid(), sig)
    time.sleep(STOP_GRACE_S)
    os._exit(128 + sig)


def watch_parent(parent_pid: int, sig: int = signal.SIGKILL) -> None:
    """A daemon thread that sends us `sig` once our parent is no longer `parent_pid` (it died
    and we were reparented): covers what pdeathsig misses (a parent thread that exited first,
    the resource tracker's clients, non-Linux systems)."""

    def loop() -> None:
        while os.getppid() == parent_pid:
            time.sleep(WATCH_INTERVAL_S)
        _die(sig)

    threading.Thread(target=loop, name="parent-watchdog", daemon=True).start()


def bind_to_parent(parent_pid: int, sig: int = signal.SIGKILL, watch: bool = True) -> None:
    """End this process with `sig` when `parent_pid` dies: pdeathsig plus a watchdog thread
    (`watch=False`: the caller starts it later, e.g. after forking, with watch_parent).

    Re-checking the parent after prctl closes the race where it died before the call.
    """
    set_pdeathsig(sig)
    if os.getppid() != parent_pid:
        _die(sig)
    if watch:
        watch_parent(parent_pid, sig)


def become_subreaper(on: bool = True) -> bool:
    """Adopt this process's orphaned descendants (a worker's fork, see providers.forked) as
    children, instead of init (or stop: `on=False`); False where unsupported."""
    return _prctl(PR_SET_CHILD_SUBREAPER, int(on))


def bind_from_env() -> None:
    """In a command started by another reflector process (see PARENT_ENV): stop cleanly, as
    for SIGTERM, when that process goes away. Watchdog only: the parent started us from a
    short-lived thread, whose end would fire a pdeathsig."""
    raw = os.environ.pop(PARENT_ENV, None)
    if not raw or not raw.isdigit():
        return
    if os.getppid() != int(raw):
        _die(signal.SIGTERM)
    watch_parent(int(raw), signal.SIGTERM)


def bind_children() -> None:
    """Every `reflector` command this process starts from now on stops when it ends."""
    os.environ[PARENT_ENV] = str(os.getpid())


@contextlib.contextmanager
def deferred_stop_signals() -> Iterator[None]:
    """Ignore further stop signals while recording a stop (a second Ctrl-C must not leave the
    run half-recorded); no-op outside the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    before = {s: signal.signal(s, signal.SIG_IGN) for s in sigs}
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


def bounded_stop(handler: Any) -> Callable[[int, FrameType | None], None]:
    """A signal handler that starts `handler`'s graceful shutdown (a library's own) and ends
    the process STOP_GRACE_S later if that is still going: a stopped worker's children must be
    gone within seconds; work it abandons is retried by its engine or broker."""
    started = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        if not started.is_set():
            started.set()
            threading.Thread(target=_exit_later, args=(signum,), daemon=True).start()
        if callable(handler):
            handler(signum, frame)

    return stop


def bound_stop_signals(sigs: tuple[signal.Signals, ...]) -> None:
    """Make each of `sigs` start the SIGTERM handler installed now (an engine's graceful stop),
    bounded in time (`bounded_stop`). ValueError outside the main thread."""
    graceful = signal.getsignal(signal.SIGTERM)
    stop = bounded_stop(graceful)
    for sig in sigs:
        signal.signal(sig, stop)


def _exit_later(signum: int) -> None:
    time.sleep(STOP_GRACE_S)
    sys.stderr.write(f"still stopping after {STOP_GRACE_S:g} s: exiting now\n")
    sys.stderr.flush()
    os._exit(128 + signum)


# Set by a process whose library spawns its own children (the Hatchet worker's listener):
# those children bind to it as soon as they import this package (see bind_if_spawned).
SPAWNED_ENV = "REFLECTOR_SPAWNED_BY"


def bind_spawned_children() -> None:
    """Children multiprocessing spawns from now on end with this process."""
    os.environ[SPAWNED_ENV] = str(os.getpid())


def bind_if_spawned() -> None:
    """In a multiprocessing child of a process that asked for it: bind to that parent now,
    before the (slow) unpickling of the child's target, so no start-up window is left."""
    want = os.environ.get(SPAWNED_ENV, "")
    # orig_argv: multiprocessing replaces sys.argv with the parent's before importing us.
    if want.isdigit() and "--multiprocessing-fork" in getattr(sys, "orig_argv", sys.argv):
        bind_to_parent(int(want))
