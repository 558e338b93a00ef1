"""Real `reflector worker hatchet|celery` processes for benchmarks: start N on one data dir, wait
until each is ready, count from each one's log which stages it took, stop them."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from benchmarks import proctree

ROOT = proctree.ROOT
# What each worker logs when it starts a stage (providers/hatchet/workflows.py; Celery's own).
TAKE = {
    "hatchet": re.compile(r"\btake (\w+) track="),
    "celery": re.compile(r"Task reflector\.(\w+)\[[^\]]+\] received"),
}


@dataclass
class Worker:
    provider: str
    proc: subprocess.Popen[bytes]
    log: Path
    port: int | None = None

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            code = self.proc.returncode
            raise SystemExit(f"{self.provider} worker exited {code}; see {self.log}")
        if self.port is None:
            return b" ready." in self.log.read_bytes()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def took(self) -> Counter[str]:
        return Counter(TAKE[self.provider].findall(self.log.read_text(errors="replace")))

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def start(provider: str, count: int, slots: int, env: dict[str, str], work: Path) -> list[Worker]:
    """`count` workers of `provider`, each with `slots` concurrent tasks, all ready."""
    flag = "--slots" if provider == "hatchet" else "--concurrency"
    workers = []
    for i in range(count):
        log = work / f"{provider}-worker-{i}.log"
        wenv = {**env, "PYTHONUNBUFFERED": "1"}
        port = None
        if provider == "hatchet":
            port = 18000 + (os.getpid() * 7 + i) % 2000
            wenv |= {
                "HATCHET_CLIENT_WORKER_HEALTHCHECK_ENABLED": "true",
                "HATCHET_CLIENT_WORKER_HEALTHCHECK_PORT": str(port),
            }
        proc = subprocess.Popen(
            [*proctree.reflector_cmd(), "worker", provider, flag, str(slots)],
            env=wenv,
            cwd=work,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: prefork children stop with it
        )
        workers.append(Worker(provider, proc, log, port))
    deadline = time.monotonic() + 240
    try:
        while not all(w.ready() for w in workers):
            if time.monotonic() > deadline:
                raise SystemExit(f"{provider} workers not ready after 240 s; see {work}")
            time.sleep(0.5)
    except BaseException:
        stop(workers)
        raise
    return workers


def stop(workers: list[Worker]) -> None:
    for w in workers:
        w.stop()


def env_from(script: str, *args: str) -> dict[str, str]:
    """KEY=VALUE lines a project script prints (scripts/hatchet-local env, redis-local start)."""
    out = subprocess.run(
        [str(ROOT / "scripts" / script), *args], capture_output=True, text=True, check=True
    ).stdout
    env = {}
    for line in out.splitlines():
        line = line.removeprefix("export ").strip()
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value.strip("'\"")
    return env
