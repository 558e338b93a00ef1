"""Celery test environment: a private redis-server (scripts/redis-local) and real worker processes.

Without redis-server the tests skip with the reason, except under CI=true where they fail.
Imported by the Celery tests as a plain module (tests/providers/conftest.py belongs to Hatchet).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.providers import services

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "redis-local"
FIXTURE = ROOT / "fixtures" / "meeting"
REDIS_SERVER = os.environ.get("REDIS_SERVER", "/usr/bin/redis-server")
WORKER_CODE = (
    "import sys; from reflector_cli.core.config import load_settings; "
    "from reflector_cli.providers.celery_app import run_worker; "
    "run_worker(load_settings(), int(sys.argv[1]))"
)


def unavailable(reason: str) -> None:
    services.unavailable("Redis", reason)


parse_lines = services.parse_env


def start_redis(state_dir: Path) -> dict[str, str]:
    """Start a private redis-server; returns CELERY_BROKER_URL / CELERY_RESULT_BACKEND."""
    if not (Path(REDIS_SERVER).is_file() or shutil.which("redis-server")):
        unavailable(f"{REDIS_SERVER} not installed")
    res = subprocess.run(
        [str(SCRIPT), "start", str(state_dir)], capture_output=True, text=True, timeout=60
    )
    env = parse_lines(res.stdout)
    if res.returncode != 0 or "CELERY_BROKER_URL" not in env:
        unavailable(f"redis-local start exited {res.returncode}: {res.stderr.strip()[-400:]}")
    return env


def stop_redis(state_dir: Path) -> None:
    subprocess.run([str(SCRIPT), "stop", str(state_dir)], capture_output=True, timeout=60)


def make_meeting(out: Path) -> Path:
    """The committed fixture, or the same generator's output while it is not committed yet."""
    if FIXTURE.is_dir():
        return FIXTURE
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_fixture.py"), "--out", str(out)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return out / "meeting"


class CeleryWorker:
    """`run_worker` in a subprocess (its own process group: prefork children included)."""

    def __init__(self, env: dict[str, str], log_path: Path, concurrency: int = 2) -> None:
        self.log_path = log_path
        self.log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WORKER_CODE, str(concurrency)],
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited {self.proc.returncode}:\n{self.tail()}")
            if b" ready." in self.log_path.read_bytes():
                return
            time.sleep(0.2)
        raise AssertionError(f"worker not ready after {timeout}s:\n{self.tail()}")

    def tail(self, n: int = 4000) -> str:
        self.log.flush()
        return self.log_path.read_bytes()[-n:].decode(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.log.close()
