"""`reflector worker hatchet|celery` leave no child behind when killed or stopped by a signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.proctable import belonging, gone_within
from tests.providers import celery_env
from tests.providers.conftest import ROOT, free_port

GONE_S = 5.0


def _worker(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "reflector_cli.cli", "worker", *args],
            cwd=ROOT,
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _wait_for(log: Path, text: str, proc: subprocess.Popen[bytes], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text(errors="replace"):
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
        time.sleep(0.2)


def _stop_and_check(proc: subprocess.Popen[bytes], marker: Path, sig: int) -> None:
    children = [p for p in belonging(marker) if p != proc.pid]
    assert children, "the worker has no children to check"
    proc.send_signal(sig)
    left, waited = gone_within(marker, GONE_S)
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)
    assert left == [], f"{signal.Signals(sig).name}: {left} left after {waited:.1f} s"
    print(f"{signal.Signals(sig).name}: worker and {len(children)} children gone in {waited:.2f} s")


def _start_then_stop(
    args: list[str], env: dict[str, str], ready: str, sig: int, tmp_path: Path
) -> None:
    """Start `reflector worker ARGS`, wait for its `ready` line, signal it, check the table."""
    log = tmp_path / "worker.log"
    proc = _worker(args, env, log)
    _wait_for(log, ready, proc)
    _stop_and_check(proc, Path(env["REFLECTOR_DATA_DIR"]), sig)


@pytest.mark.hatchet
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGHUP])
def test_hatchet_worker_children_end_with_it(
    tmp_path: Path, hatchet_client_env: dict[str, str], sig: int
) -> None:
    data = tmp_path / "data"
    env = {
        **hatchet_client_env,
        "REFLECTOR_DATA_DIR": str(data),
        "HATCHET_CLIENT_WORKER_HEALTHCHECK_ENABLED": "true",
        "HATCHET_CLIENT_WORKER_HEALTHCHECK_PORT": str(free_port()),
    }
    _start_then_stop(["hatchet", "--slots", "1"], env, "started, waiting for tasks", sig, tmp_path)


@pytest.fixture
def redis_urls(tmp_path: Path) -> Iterator[dict[str, str]]:
    urls = celery_env.start_redis(tmp_path / "redis")
    try:
        yield urls
    finally:
        celery_env.stop_redis(tmp_path / "redis")


@pytest.mark.celery
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGHUP])
def test_celery_worker_children_end_with_it(
    tmp_path: Path, redis_urls: dict[str, str], sig: int
) -> None:
    env = {**redis_urls, "REFLECTOR_DATA_DIR": str(tmp_path / "data")}
    _start_then_stop(["celery", "--concurrency", "2"], env, " ready.", sig, tmp_path)
