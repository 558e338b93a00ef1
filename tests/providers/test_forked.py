"""Early workers forked from the first one: each is the command's own child, takes tasks, can be
killed alone, and dies with the command. Run in a child interpreter of the test, which becomes
a subreaper there as `reflector process` does (pytest itself must not)."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")

_COMMAND = """
import ctypes, json, os, sys, time
from reflector_cli.providers.forked import ForkedProc
from reflector_cli.providers.local_task import init_worker
from reflector_cli.providers.workerpool import WorkerDied, WorkerPool, spawn_early

spawn_early(2, ("numpy", "reflector_cli.providers.local_task"), None)
pool = WorkerPool(2, init_worker)
long, short = pool.submit(time.sleep, 30), pool.submit(time.sleep, 5)
while len(pool._running) < 2:
    time.sleep(0.01)
workers = {fut: w for fut, w in pool._running.items()}
pids = {"long": workers[long].proc.pid, "short": workers[short].proc.pid}
forks = sum(isinstance(w.proc, ForkedProc) for w in workers.values())
flag = ctypes.c_int(-1)
ctypes.CDLL(None).prctl(37, ctypes.byref(flag), 0, 0, 0)  # PR_GET_CHILD_SUBREAPER
if sys.argv[1] == "threads":
    short.result(timeout=60)
    pool.kill(long, "done")
    print(json.dumps({"forks": forks}))
    sys.exit(0)
if sys.argv[1] == "hold":
    print(json.dumps(pids), flush=True)
    time.sleep(60)
victim = next(f for f, w in workers.items() if isinstance(w.proc, ForkedProc))
other = short if victim is long else long
assert pool.kill(victim, "timed out")
try:
    victim.result(timeout=10)
    died = None
except WorkerDied as exc:
    died = str(exc)
if other is long:
    pool.kill(long, "done")  # the first worker's 30 s sleep is not what is tested
else:
    other.result(timeout=10)
again = pool.submit(os.getppid).result(timeout=60)  # a replacement worker takes it
print(json.dumps({"pids": pids, "forks": forks, "died": died, "again": again,
                  "reaped": workers[victim].proc.returncode, "me": os.getpid(),
                  "subreaper": flag.value}))
pool.close()
"""


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    state, ppid = stat.rsplit(")", 1)[1].split()[:2]
    return None if state == "Z" else int(ppid)


# No BLAS threads in the first worker (the user's setting could start some): it forks.
_ONE_THREAD = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}


def _openblas() -> bool:
    import numpy as np

    return "openblas" in str(np.show_config(mode="dicts")).lower()


def _command(mode: str, env: dict[str, str]) -> dict:
    """Run _COMMAND in `mode` to its end; what it reported, after a clean exit."""
    out = subprocess.run(
        [sys.executable, "-c", _COMMAND, mode], capture_output=True, text=True, timeout=120, env=env
    )
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    return json.loads(out.stdout)


def test_a_fork_is_the_commands_child_and_can_be_killed_alone() -> None:
    got = _command("kill", _ONE_THREAD)
    assert got["forks"] == 1  # the second worker was forked, not started as an interpreter
    assert got["died"] == "timed out"
    assert got["reaped"] is not None  # the command reaped its adopted child
    assert got["again"] == got["me"]  # the replacement is the command's child too
    assert got["subreaper"] == 0  # every fork adopted: later orphans go to init again


def test_every_worker_dies_with_the_command() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _COMMAND, "hold"], stdout=subprocess.PIPE, text=True, env=_ONE_THREAD
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 120)
        assert ready, "the command never reported its workers"
        pids = json.loads(proc.stdout.readline())
        assert {_parent_of(p) for p in pids.values()} == {proc.pid}
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 5
    while any(_parent_of(p) is not None for p in pids.values()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [p for p in pids.values() if _parent_of(p) is not None] == []


@pytest.mark.skipif(not _openblas(), reason="the threads come from OpenBLAS")
def test_a_first_worker_with_threads_forks_nothing_and_the_command_starts_the_other() -> None:
    # OpenBLAS starts its threads when numpy is imported: a fork would lack them.
    assert _command("threads", {**os.environ, "OPENBLAS_NUM_THREADS": "2"}) == {"forks": 0}
