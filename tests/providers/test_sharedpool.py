"""The shared pool with real worker processes: each run gets its own events (before its
task's result), heavy slots are bounded across runs, a stop reaches every run's thread."""

from __future__ import annotations

import queue
import time
from typing import Any

import pytest

from reflector_cli.providers import local
from reflector_cli.providers.sharedpool import Lease, SharedPool
from reflector_cli.providers.workerpool import WorkerDied
from tests.providers.pool_tasks import emit_then_return, sleep_for


def _drain(lease: Lease) -> list[Any]:
    items = []
    while True:
        try:
            items.append(lease.events.get_nowait())
        except queue.Empty:
            return items


def test_events_reach_the_run_that_sent_them_before_its_result() -> None:
    share = local.shared_pool(2)
    try:
        a, b = share.lease(), share.lease()
        futs = [(a, "a", a.submit(emit_then_return, "a", 5)) for _ in range(3)]
        futs += [(b, "b", b.submit(emit_then_return, "b", 7)) for _ in range(3)]
        for _, label, fut in futs:
            assert fut.result(timeout=60) == label
        got_a, got_b = _drain(a), _drain(b)
        assert [d["label"] for _, d in got_a] == ["a"] * 15
        assert [d["label"] for _, d in got_b] == ["b"] * 21
        assert sorted(d["done"] for _, d in got_a) == sorted(list(range(5)) * 3)
    finally:
        share.close()


def test_heavy_slots_are_bounded_across_runs_and_given_back_when_done() -> None:
    share = SharedPool(2, local._init_worker)
    try:
        a, b = share.lease(), share.lease()
        assert a.reserve() and b.reserve()
        assert not a.reserve() and not b.reserve()  # two workers, two slots, whoever asks
        fa, fb = a.submit(sleep_for, 0.2), b.submit(sleep_for, 0.2)
        fa.result(timeout=60)
        fb.result(timeout=60)
        assert not a.reserve()  # done, but its end not yet recorded by its run
        a.finished(fa)
        assert a.reserve()  # given back once the run recorded the task's end
        a.close()  # a reserved slot a run never used comes back with the run
        assert b.reserve()  # the slot a never used
        assert not b.reserve()  # b's done task still holds the other
        b.finished(fb)
        assert b.reserve() and share.most_busy == 2
    finally:
        share.close()


def test_a_stop_is_raised_in_every_run_reading_its_events() -> None:
    share = local.shared_pool(1)
    lease = share.lease()
    fut = lease.submit(sleep_for, 30)
    while not fut.running():  # handed to the worker (which may still be starting)
        time.sleep(0.01)
    share.stop(KeyboardInterrupt("SIGTERM"))
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
        lease.events.get_nowait()
    with pytest.raises(WorkerDied, match="interrupted"):
        fut.result(timeout=10)  # its worker was killed, not waited for
