"""Smoke test for a running Hatchet engine: a parent -> child workflow whose child fails once.

Needs the env from `eval "$(scripts/hatchet-local env)"`; exits 0 when every run succeeded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from hatchet_sdk import Context, Hatchet, V1TaskStatus
from hatchet_sdk.runnables.workflow import Workflow
from pydantic import BaseModel

WORKFLOW_NAME = "reflector-smoke"


class SmokeInput(BaseModel):
    tag: str
    events_path: str  # worker appends one JSON line per attempt start/end, for timing


class ParentOut(BaseModel):
    value: int


class ChildOut(BaseModel):
    value: int
    attempt: int


def _record(path: str, task: str, event: str, attempt: int) -> None:
    # Same machine as the client, so wall-clock stamps are comparable across processes.
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"task": task, "event": event, "attempt": attempt, "t": time.time()}))
        fh.write("\n")


def build_workflow(hatchet: Hatchet) -> Workflow[SmokeInput]:
    """Declare the two-task DAG; the child has one retry and fails its first attempt."""
    wf = hatchet.workflow(name=WORKFLOW_NAME, input_validator=SmokeInput)

    @wf.task()
    def parent(inp: SmokeInput, ctx: Context) -> ParentOut:
        _record(inp.events_path, "parent", "start", ctx.attempt_number)
        _record(inp.events_path, "parent", "end", ctx.attempt_number)
        return ParentOut(value=20)

    @wf.task(parents=[parent], retries=1)
    def child(inp: SmokeInput, ctx: Context) -> ChildOut:
        _record(inp.events_path, "child", "start", ctx.attempt_number)
        if ctx.retry_count == 0:
            _record(inp.events_path, "child", "end", ctx.attempt_number)
            raise RuntimeError("planned failure on the first attempt")
        got = ctx.task_output(parent)
        _record(inp.events_path, "child", "end", ctx.attempt_number)
        return ChildOut(value=got.value + 22, attempt=ctx.attempt_number)

    return wf


def run_worker() -> None:
    """Worker process body: Worker.start() blocks, owns the signal handlers and exits itself."""
    hatchet = Hatchet()
    worker = hatchet.worker("reflector-smoke-worker", slots=2, workflows=[build_workflow(hatchet)])
    worker.start()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_health(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited early with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"worker health endpoint not ready after {timeout:.0f} s")


def _stamps(path: Path) -> dict[tuple[str, int, str], float]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return {(r["task"], r["attempt"], r["event"]): r["t"] for r in rows}


async def _wait_rest_terminal(hatchet: Hatchet, run_id: str, since: float) -> float:
    terminal = {V1TaskStatus.COMPLETED, V1TaskStatus.FAILED, V1TaskStatus.CANCELLED}
    while time.time() - since < 10:
        if await hatchet.runs.aio_get_status(run_id) in terminal:
            return time.time() - since
        await asyncio.sleep(0.05)
    raise RuntimeError(f"run {run_id} not terminal over REST 10 s after its result")


async def run_smoke(runs: int) -> int:
    hatchet = Hatchet()
    wf = build_workflow(hatchet)
    print(f"engine version: {await hatchet.aio_get_engine_version()}")

    waits: dict[str, list[float]] = {
        "trigger->parent start": [],
        "parent end->child start": [],
        "child fail->retry start": [],
        "child end->result": [],
    }
    walls: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(runs):
            events = Path(tmp) / f"run{i}.jsonl"
            t0 = time.time()
            ref = await wf.aio_run(
                SmokeInput(tag=f"smoke-{i}", events_path=str(events)), wait_for_result=False
            )
            result = await ref.aio_result()
            t1 = time.time()
            walls.append(t1 - t0)
            s = _stamps(events)
            waits["trigger->parent start"].append(s[("parent", 1, "start")] - t0)
            waits["parent end->child start"].append(
                s[("child", 1, "start")] - s[("parent", 1, "end")]
            )
            waits["child fail->retry start"].append(
                s[("child", 2, "start")] - s[("child", 1, "end")]
            )
            waits["child end->result"].append(t1 - s[("child", 2, "end")])
            if i == 0:
                print(f"run id: {ref.workflow_run_id}")
                print(f"result: {json.dumps(result)}")
                # The REST view is fed asynchronously (OLAP tables), so it can still say RUNNING
                # after the result stream has delivered the output; wait for it to catch up.
                lag = await _wait_rest_terminal(hatchet, ref.workflow_run_id, t1)
                print(f"REST status terminal {lag * 1000:.0f} ms after the result arrived")
                details = await hatchet.runs.aio_get(ref.workflow_run_id)
                print(f"run status: {details.run.status.value}")
                for task in details.tasks:
                    print(
                        f"  task {task.display_name}: {task.status.value},"
                        f" retry_count={task.retry_count}, attempt={task.attempt}"
                    )
                ordered = sorted(details.task_events, key=lambda e: (e.timestamp, e.id))
                events_seen = [f"{e.task_display_name}:{e.event_type.value}" for e in ordered]
                print(f"  task events (oldest first): {', '.join(events_seen)}")
            if result.get("child", {}).get("value") != 42:
                print(f"unexpected result: {result}", file=sys.stderr)
                return 1

    print(f"runs: {runs}, median wall per run: {statistics.median(walls) * 1000:.0f} ms")
    for name, values in waits.items():
        print(f"median {name}: {statistics.median(values) * 1000:.0f} ms")
    per_task = waits["trigger->parent start"] + waits["parent end->child start"]
    print(f"median dispatch overhead per task: {statistics.median(per_task) * 1000:.0f} ms")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5, help="workflow runs to time")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run_worker()
        return 0
    if not os.environ.get("HATCHET_CLIENT_TOKEN"):
        print('no HATCHET_CLIENT_TOKEN; run: eval "$(scripts/hatchet-local env)"', file=sys.stderr)
        return 2

    # A fresh namespace keeps this run's workflow and worker apart from anything else on the engine.
    os.environ.setdefault("HATCHET_CLIENT_NAMESPACE", f"smoke{os.getpid()}")
    health_port = _free_port()
    env = dict(
        os.environ,
        PYTHONUNBUFFERED="1",
        HATCHET_CLIENT_WORKER_HEALTHCHECK_ENABLED="true",
        HATCHET_CLIENT_WORKER_HEALTHCHECK_PORT=str(health_port),
        HATCHET_CLIENT_WORKER_HEALTHCHECK_BIND_ADDRESS="127.0.0.1",
    )
    log_path = Path(tempfile.gettempdir()) / f"hatchet-smoke-worker-{os.getpid()}.log"
    t_start = time.monotonic()
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(
            [sys.executable, __file__, "--worker"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            _wait_health(health_port, worker, timeout=60)
            print(f"worker ready in {(time.monotonic() - t_start) * 1000:.0f} ms")
            code = asyncio.run(run_smoke(args.runs))
        except Exception as exc:  # report and fall through to the worker shutdown
            print(f"smoke failed: {exc!r}; worker log: {log_path}", file=sys.stderr)
            code = 1
        finally:
            t_stop = time.monotonic()
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
            print(f"worker stopped in {(time.monotonic() - t_stop) * 1000:.0f} ms")
    if code == 0:
        log_path.unlink(missing_ok=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
