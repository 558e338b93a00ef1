"""Provider test fixtures: a real Hatchet engine via scripts/hatchet-local, real worker
subprocesses, and a run's recorder on a real SQLite store (`rec`).

Without an engine the tests skip with the reason, except under CI=true where they fail.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reflector_cli.core import models as m
from reflector_cli.core.config import load_settings
from reflector_cli.providers.recorder import Recorder
from reflector_cli.store.events import EventSink
from reflector_cli.store.repo import Store
from tests.providers import services

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "hatchet-local"
FIXTURE = ROOT / "fixtures" / "meeting"
WORKER_CODE = (
    "import sys; from reflector_cli.core.config import Settings; "
    "from reflector_cli.providers.hatchet import run_worker; "
    "run_worker(Settings(), slots=int(sys.argv[1]))"
)


def _unavailable(reason: str) -> None:
    services.unavailable("Hatchet engine", reason)


parse_env = services.parse_env


@pytest.fixture(scope="session")
def hatchet_env() -> dict[str, str]:
    """HATCHET_CLIENT_* for a running local engine, with a namespace private to this session."""
    if not SCRIPT.exists():
        _unavailable(f"{SCRIPT.relative_to(ROOT)} does not exist")
    up = subprocess.run([str(SCRIPT), "up"], capture_output=True, text=True, timeout=1800, cwd=ROOT)
    if up.returncode != 0:
        _unavailable(f"hatchet-local up exited {up.returncode}: {up.stderr.strip()[-400:]}")
    out = subprocess.run(
        [str(SCRIPT), "env"], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    env = parse_env(out.stdout)
    if out.returncode != 0 or "HATCHET_CLIENT_TOKEN" not in env:
        _unavailable(f"hatchet-local env gave no token: {out.stderr.strip()[-400:]}")
    # Workflows and runs of other sessions on the same engine stay invisible to this one.
    env["HATCHET_CLIENT_NAMESPACE"] = f"t{uuid.uuid4().hex[:8]}"
    return env


@pytest.fixture
def hatchet_client_env(
    hatchet_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """The engine's env applied to this process (the submitting side), with a namespace of this
    test's own: a worker of an earlier test that the engine still counts as alive can then
    never take this test's tasks. Workers started afterwards read the same dict."""
    hatchet_env["HATCHET_CLIENT_NAMESPACE"] = f"t{uuid.uuid4().hex[:8]}"
    for k, v in hatchet_env.items():
        monkeypatch.setenv(k, v)
    return hatchet_env


@pytest.fixture(scope="session")
def meeting(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The committed fixture, or the same generator's output while it is not committed yet."""
    if FIXTURE.is_dir():
        return FIXTURE
    out = tmp_path_factory.mktemp("fixture")
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_fixture.py"), "--out", str(out)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return out / "meeting"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Worker:
    """A `run_worker` subprocess in its own process group (the SDK spawns a listener child)."""

    def __init__(self, env: dict[str, str], log_path: Path, slots: int) -> None:
        self.port = free_port()
        self.log_path = log_path
        full = {
            **os.environ,
            **env,
            "PYTHONUNBUFFERED": "1",
            "HATCHET_CLIENT_WORKER_HEALTHCHECK_ENABLED": "true",
            "HATCHET_CLIENT_WORKER_HEALTHCHECK_PORT": str(self.port),
        }
        self.log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WORKER_CODE, str(slots)],
            env=full,
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_healthy(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited {self.proc.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"worker not healthy after {timeout}s:\n{self.tail()}")

    def tail(self, n: int = 4000) -> str:
        self.log.flush()
        return self.log_path.read_bytes()[-n:].decode(errors="replace")

    def kill(self) -> None:
        """SIGKILL the worker and its listener child: no graceful shutdown at all."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.log.close()


@pytest.fixture
def start_worker(hatchet_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """Start healthy workers for a data dir; every one is stopped at teardown."""
    started: list[Worker] = []

    def start(data_dir: Path, slots: int = 2, **extra: str) -> Worker:
        env = {**hatchet_env, "REFLECTOR_DATA_DIR": str(data_dir), **extra}
        w = Worker(env, tmp_path / f"worker-{len(started)}.log", slots)
        started.append(w)
        w.wait_healthy()
        return w

    yield start
    for w in started:
        w.stop()


RUN = "r-rec"  # the run `rec` records


@pytest.fixture
def rec(tmp_path: Path) -> Iterator[Recorder]:
    pipe = m.PipelineInput(
        recording_id="rec-1",
        transcript_id="t-rec-1",
        source_kind="folder",
        source="/x",
        asr=m.AsrOptions(model="/m"),
    )
    store = Store(tmp_path / "db.sqlite")
    store.ensure_recording(pipe)
    store.create_run(RUN, pipe, "local")
    settings = load_settings(data_dir=tmp_path / "data")
    try:
        yield Recorder(store, settings, pipe, RUN, EventSink(store, pipe.transcript_id, RUN))
    finally:
        store.close()
