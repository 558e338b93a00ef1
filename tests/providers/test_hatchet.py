"""The Hatchet provider on a real engine with real worker subprocesses and the real model."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from reflector_cli.core.config import Settings, load_settings
from reflector_cli.providers import hatchet as hp
from reflector_cli.providers.hatchet import workflows
from reflector_cli.runs.process import ProcessResult, process_recording
from reflector_cli.store.repo import Store


def _process(meeting: Path, data_dir: Path, provider: str) -> ProcessResult:
    return process_recording(str(meeting), load_settings(data_dir=data_dir), provider=provider)


def _snapshot(data_dir: Path, res: ProcessResult) -> dict[str, Any]:
    store = Store(data_dir / "reflector.sqlite3")
    try:
        tid = res.view["transcript_id"]
        return {
            "words": [(w["speaker"], w["text"], w["start"], w["end"]) for w in store.words(tid)],
            "speakers": [(p["speaker"], p["name"]) for p in store.participants(tid)],
            "topics": [
                (t["title"], t["summary"], t["start"], t["duration"]) for t in store.topics(tid)
            ],
            "title": res.view["title"],
        }
    finally:
        store.close()


def _run_rows(data_dir: Path, run_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    store = Store(data_dir / "reflector.sqlite3")
    try:
        run = store.run(run_id)
        assert run is not None
        return run, store.stage_runs(run_id)
    finally:
        store.close()


class _Background(threading.Thread):
    """`reflector process --provider hatchet` on a thread, so a test can kill workers meanwhile."""

    def __init__(self, meeting: Path, data_dir: Path) -> None:
        super().__init__(daemon=True)
        self.meeting, self.data_dir = meeting, data_dir
        self.box: dict[str, Any] = {}
        self.start()

    def run(self) -> None:
        try:
            self.box["res"] = _process(self.meeting, self.data_dir, "hatchet")
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            self.box["exc"] = exc

    def result(self, worker_tail: Callable[[], str]) -> ProcessResult:
        self.join(timeout=600)
        assert not self.is_alive(), f"run did not finish:\n{worker_tail()}"
        if "exc" in self.box:
            raise self.box["exc"]
        return self.box["res"]


def _wait_for_transcription(worker: Any, alive: Callable[[], Any]) -> None:
    """Until `worker` takes a transcribe_track task; `alive()` is truthy while the submitter
    runs (else it returns what to show: the submitter died before the kill point)."""
    deadline = time.monotonic() + 180
    while "take transcribe_track" not in worker.tail(100_000):
        assert time.monotonic() < deadline, f"transcription never started:\n{worker.tail()}"
        state = alive()
        assert state is True, state
        time.sleep(0.2)


@pytest.mark.hatchet
@pytest.mark.slow
def test_hatchet_gives_the_same_transcript_as_local(
    meeting: Path, tmp_path: Path, hatchet_client_env: dict[str, str], start_worker: Callable
) -> None:
    local_dir, hatchet_dir = tmp_path / "local", tmp_path / "hatchet"
    start_worker(hatchet_dir)
    local = _process(meeting, local_dir, "local")
    assert local.ok, local.error
    remote = _process(meeting, hatchet_dir, "hatchet")
    assert remote.ok, remote.error

    a, b = _snapshot(local_dir, local), _snapshot(hatchet_dir, remote)
    assert b["words"], "no words transcribed through Hatchet"
    assert b == a
    run, stages = _run_rows(hatchet_dir, remote.run_id or "")
    assert run["provider"] == "hatchet" and run["status"] == "ended"
    assert run["engine_run_id"], "engine run id not stored"
    n_tracks = len(b["speakers"])
    per_stage: dict[str, list[dict[str, Any]]] = {}
    for row in stages:
        per_stage.setdefault(row["stage"], []).append(row)
    assert len(per_stage["transcribe_track"]) == n_tracks
    assert len(per_stage["pad_track"]) == n_tracks
    critical = [r for r in stages if r["stage"] not in {"post_zulip", "send_webhook"}]
    assert all(r["status"] == "done" and r["attempts"] == 1 for r in critical), critical


@pytest.mark.hatchet
@pytest.mark.slow
def test_retried_stage_records_attempts_and_run_ends(
    meeting: Path, tmp_path: Path, hatchet_client_env: dict[str, str], start_worker: Callable
) -> None:
    data = tmp_path / "data"
    start_worker(data, REFLECTOR_TEST_FAIL="generate_title:2")
    res = _process(meeting, data, "hatchet")
    assert res.ok, res.error
    run, stages = _run_rows(data, res.run_id or "")
    assert run["status"] == "ended"
    title = next(r for r in stages if r["stage"] == "generate_title")
    assert title["status"] == "done"
    assert title["attempts"] == 3
    others = [r for r in stages if r["stage"] == "detect_topics"]
    assert others and others[0]["attempts"] == 1


@pytest.mark.hatchet
@pytest.mark.slow
def test_a_failing_non_critical_stage_does_not_cancel_delivery(
    meeting: Path, tmp_path: Path, hatchet_client_env: dict[str, str], start_worker: Callable
) -> None:
    """cleanup_consent is critical=False: on the engine, as locally, its final failure is
    recorded and the delivery stages after it still run."""
    fail = {"test_fail": "cleanup_consent:9", "retry_backoff_s": 0.0}
    local_dir, data = tmp_path / "local", tmp_path / "hatchet"
    start_worker(data, REFLECTOR_TEST_FAIL="cleanup_consent:9", REFLECTOR_RETRY_BACKOFF="0")
    local = process_recording(str(meeting), load_settings(data_dir=local_dir, **fail))
    remote = _process(meeting, data, "hatchet")
    assert local.ok and remote.ok, (local.error, remote.error)

    def tail(data_dir: Path, res: ProcessResult) -> tuple[str, list[tuple[str, str, int]]]:
        run, stages = _run_rows(data_dir, res.run_id or "")
        late = {"cleanup_consent", "post_zulip", "send_webhook"}
        rows = sorted(
            (r["stage"], r["status"], r["attempts"]) for r in stages if r["stage"] in late
        )
        return run["status"], rows

    want = (
        "ended",
        [("cleanup_consent", "failed", 3), ("post_zulip", "done", 1), ("send_webhook", "done", 1)],
    )
    assert tail(local_dir, local) == want
    assert tail(data, remote) == want


@pytest.mark.hatchet
@pytest.mark.slow
def test_worker_killed_mid_transcription_then_restarted_finishes(
    meeting: Path, tmp_path: Path, hatchet_client_env: dict[str, str], start_worker: Callable
) -> None:
    data = tmp_path / "data"
    first = start_worker(data, slots=1)
    runner = _Background(meeting, data)
    _wait_for_transcription(first, lambda: runner.is_alive() or runner.box)
    first.kill()
    assert "done transcribe_track" not in first.tail(100_000), "finished before the kill"
    second = start_worker(data, slots=1)
    res = runner.result(second.tail)
    assert res.ok, f"{res.error}\n{second.tail()}"
    assert res.view["word_count"] > 0
    assert "take transcribe_track" in second.tail(100_000)
    run, stages = _run_rows(data, res.run_id or "")
    assert run["status"] == "ended"
    assert all(r["status"] == "done" for r in stages if r["stage"] == "transcribe_track")


@pytest.mark.hatchet
@pytest.mark.slow
def test_a_task_sent_to_a_just_killed_worker_is_resent_and_the_run_ends_ok(
    meeting: Path, tmp_path: Path, hatchet_client_env: dict[str, str], start_worker: Callable
) -> None:
    """The engine keeps a killed worker eligible for a few seconds (its last heartbeat is
    recent). The submitter now waits for a live worker before it submits, so usually the first
    task goes to the new worker; if the engine still offers it to the dead one, delivery fails
    ("Could not send task to worker"), the engine re-sends it, and its listing shows the task
    and the run FAILED meanwhile. Either way the run must end normally, each stage once done.
    """
    data = tmp_path / "data"
    start_worker(data, slots=1).kill()
    runner = _Background(meeting, data)
    time.sleep(8)  # offered to the dead worker until its heartbeat is stale, then waits
    start_worker(data, slots=1)
    res = runner.result(lambda: "")
    assert res.ok, res.error
    run, stages = _run_rows(data, res.run_id or "")
    assert run["status"] == "ended"
    first = next(r for r in stages if r["stage"] == "get_recording")
    assert first["status"] == "done" and first["attempts"] >= 1, first
    assert all(r["status"] == "done" for r in stages), stages


@pytest.mark.hatchet
@pytest.mark.slow
def test_no_wait_submit_then_sync_records_the_engine_run(
    meeting: Path, tmp_path: Path, hatchet_client_env: dict[str, str], start_worker: Callable
) -> None:
    data = tmp_path / "data"
    settings = load_settings(data_dir=data)
    start_worker(data)  # workers register the workflow in this test's fresh namespace
    run_id = hp.submit_run(str(meeting), settings)
    run, stages = _run_rows(data, run_id)
    assert run["status"] == hp.SUBMITTED and run["engine_run_id"]
    assert stages == [], "nothing is recorded before anyone syncs"
    store = Store(settings.db_path)
    try:
        deadline = time.monotonic() + 180
        info = hp.sync_run(store, run_id, settings)
        while info["status"] == hp.SUBMITTED:
            assert time.monotonic() < deadline, info
            time.sleep(0.5)
            info = hp.sync_run(store, run_id, settings)
        assert info["status"] == "ended", info
        assert info["engine_status"] == "COMPLETED"
        # The finalize hook committed the transcript, as a followed run would have.
        transcript = store.transcript(store.run(run_id)["transcript_id"])
        assert transcript is not None and transcript["status"] == "ended"
        assert store.words(transcript["id"]), "no words committed"
        rows = store.stage_runs(run_id)
        assert {r["stage"] for r in rows} >= {"get_recording", "transcribe_track", "finalize"}
        critical = [r for r in rows if r["stage"] not in {"post_zulip", "send_webhook"}]
        assert all(r["status"] == "done" and r["attempts"] == 1 for r in critical), critical
        # A second sync of a finished run changes nothing.
        assert hp.sync_run(store, run_id, settings)["status"] == "ended"
        assert len(store.stage_runs(run_id)) == len(rows)
    finally:
        store.close()


@pytest.mark.hatchet
@pytest.mark.slow
def test_killed_submitter_then_the_same_command_follows_the_engine_run(
    meeting: Path, tmp_path: Path, hatchet_client_env: dict[str, str], start_worker: Callable
) -> None:
    data = tmp_path / "data"
    worker = start_worker(data, slots=2)
    cmd = [sys.executable, "-m", "reflector_cli.cli", "process", str(meeting)]
    cmd += ["--provider", "hatchet", "--data-dir", str(data)]
    with open(tmp_path / "submitter.log", "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        log = tmp_path / "submitter.log"
        _wait_for_transcription(worker, lambda: proc.poll() is None or log.read_text())
        os.killpg(proc.pid, signal.SIGKILL)  # the submitter only: the engine and worker go on
        proc.wait(timeout=30)
    res = _process(meeting, data, "hatchet")
    assert res.ok, res.error
    store = Store(data / "reflector.sqlite3")
    try:
        runs = store.runs(10)
    finally:
        store.close()
    assert [r["id"] for r in runs] == [res.run_id], "a second run was started"
    run, stages = _run_rows(data, res.run_id or "")
    assert run["status"] == "ended"
    transcribed = [r for r in stages if r["stage"] == "transcribe_track"]
    assert len(transcribed) == 3 and all(r["status"] == "done" for r in transcribed)
    # Every track was transcribed once, by the one engine run.
    assert worker.tail(1_000_000).count("take transcribe_track") == 3


@pytest.mark.hatchet
@pytest.mark.slow
def test_process_after_no_wait_submit_follows_that_run(
    meeting: Path, tmp_path: Path, hatchet_client_env: dict[str, str], start_worker: Callable
) -> None:
    data = tmp_path / "data"
    start_worker(data)
    run_id = hp.submit_run(str(meeting), load_settings(data_dir=data))
    res = _process(meeting, data, "hatchet")
    assert res.ok, res.error
    assert res.run_id == run_id
    run, stages = _run_rows(data, run_id)
    assert run["status"] == "ended" and res.view["word_count"] > 0
    assert all(r["attempts"] == 1 for r in stages if r["stage"] == "transcribe_track")


@pytest.mark.hatchet
@pytest.mark.slow
def test_rerun_after_a_failure_reuses_the_finished_stages(
    meeting: Path, tmp_path: Path, hatchet_client_env: dict[str, str], start_worker: Callable
) -> None:
    data = tmp_path / "data"
    faulty = start_worker(data, REFLECTOR_TEST_FAIL="generate_title:5")
    first = _process(meeting, data, "hatchet")
    assert not first.ok and first.error_stage == "generate_title"
    faulty.stop()
    healthy = start_worker(data)
    second = _process(meeting, data, "hatchet")
    assert second.ok, second.error
    assert second.run_id != first.run_id
    _, stages = _run_rows(data, second.run_id or "")
    by_stage: dict[str, list[dict[str, Any]]] = {}
    for r in stages:
        by_stage.setdefault(r["stage"], []).append(r)
    for name in ("get_recording", "pad_track", "transcribe_track", "detect_topics"):
        assert all(r["reused_from"] == first.run_id for r in by_stage[name]), by_stage[name]
    assert len(by_stage["transcribe_track"]) == 3
    for name in ("generate_title", "finalize"):
        (row,) = by_stage[name]
        assert row["status"] == "done" and row["reused_from"] is None, row
    worker_log = healthy.tail(1_000_000)
    assert "take transcribe_track" not in worker_log  # no track run was even started
    assert "take generate_title" in worker_log and "reuse detect_topics" in worker_log


# --------------------------------------------------------------------------- no engine needed


def _token(**claims: Any) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'ES256'})}.{part(claims)}.c2ln"


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP port that accepts connections (an engine stand-in for the reachability dial)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield int(s.getsockname()[1])


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_hatchet_checks_reads_the_token_and_flags_the_container_trap(listener: int) -> None:
    dead = _closed_port()
    good = _token(
        sub="tenant-1",
        exp=int(time.time()) + 3600,
        grpc_broadcast_address=f"127.0.0.1:{listener}",
        server_url=f"http://127.0.0.1:{listener}",
    )
    rows = {r["name"]: r for r in hp.hatchet_checks(Settings(), {"HATCHET_CLIENT_TOKEN": good})}
    assert [rows[n]["ok"] for n in ("hatchet token", "hatchet grpc", "hatchet api")] == [True] * 3
    assert "tenant-1" in rows["hatchet token"]["detail"]
    assert "from the token" in rows["hatchet grpc"]["detail"]

    # The env points somewhere dead while the token's address answers: say what to set.
    env = {"HATCHET_CLIENT_TOKEN": good, "HATCHET_CLIENT_HOST_PORT": f"127.0.0.1:{dead}"}
    grpc = {r["name"]: r for r in hp.hatchet_checks(Settings(), env)}["hatchet grpc"]
    assert not grpc["ok"]
    assert f"set HATCHET_CLIENT_HOST_PORT=127.0.0.1:{listener}" in grpc["detail"]

    # A token minted inside a container: its addresses do not answer from here.
    boxed = _token(
        sub="t",
        exp=int(time.time()) + 3600,
        grpc_broadcast_address=f"127.0.0.1:{dead}",
        server_url=f"http://127.0.0.1:{dead}",
    )
    rows = {r["name"]: r for r in hp.hatchet_checks(Settings(), {"HATCHET_CLIENT_TOKEN": boxed})}
    assert not rows["hatchet grpc"]["ok"] and not rows["hatchet api"]["ok"]
    assert "set HATCHET_CLIENT_HOST_PORT=" in rows["hatchet grpc"]["detail"]
    assert "set HATCHET_CLIENT_SERVER_URL=" in rows["hatchet api"]["detail"]
    # ...fixed by overriding both with addresses that answer.
    env = {
        "HATCHET_CLIENT_TOKEN": boxed,
        "HATCHET_CLIENT_HOST_PORT": f"127.0.0.1:{listener}",
        "HATCHET_CLIENT_SERVER_URL": f"http://127.0.0.1:{listener}",
    }
    rows = {r["name"]: r for r in hp.hatchet_checks(Settings(), env)}
    assert rows["hatchet grpc"]["ok"] and "overridden" in rows["hatchet grpc"]["detail"]
    assert rows["hatchet api"]["ok"]


def test_hatchet_checks_rejects_missing_malformed_and_expired_tokens() -> None:
    assert not hp.hatchet_checks(Settings(), {})[0]["ok"]
    bad = hp.hatchet_checks(Settings(), {"HATCHET_CLIENT_TOKEN": "not-a-jwt"})
    assert not bad[0]["ok"] and "unreadable" in bad[0]["detail"]
    old = _token(sub="t", exp=int(time.time()) - 60, grpc_broadcast_address="127.0.0.1:1")
    rows = hp.hatchet_checks(Settings(), {"HATCHET_CLIENT_TOKEN": old}, timeout_s=0.2)
    assert not rows[0]["ok"] and "expired" in rows[0]["detail"]
    assert hp.hatchet_checks(Settings(provider="hatchet"), {})[0]["required"] is True


class _Ctx:
    """Stands in for the SDK's Context: the gate only calls refresh_timeout."""

    def __init__(self) -> None:
        self.refreshed: list[timedelta] = []

    def refresh_timeout(self, by: timedelta) -> None:
        self.refreshed.append(by)


def test_heavy_gate_bounds_concurrency_and_extends_timeouts_while_waiting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(workflows, "GATE_REFRESH_S", 0.05)
    gate = workflows._HeavyGate()
    gate.configure(2)
    running, peak, lock = [0], [0], threading.Lock()
    ctxs = [_Ctx() for _ in range(5)]

    def work(ctx: _Ctx) -> None:
        gate.acquire(ctx)  # type: ignore[arg-type]
        try:
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            time.sleep(0.15)
            with lock:
                running[0] -= 1
        finally:
            gate.release()

    threads = [threading.Thread(target=work, args=(c,)) for c in ctxs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert peak[0] == 2
    # Whoever waited had its execution deadline pushed back by the engine-facing context.
    assert any(c.refreshed for c in ctxs)
    assert hp.engine_slots(2) > 2


def _registered_timeouts(settings: Settings) -> dict[str, str]:
    """Each task's execution timeout as the worker would register it with the engine."""
    out: dict[str, str] = {}
    for wf in workflows.build_workflows(hp.client(), settings):
        for task in wf.to_proto().tasks:
            out[task.readable_id] = task.timeout
    return out


@pytest.mark.hatchet
def test_stage_timeout_overrides_reach_the_registered_tasks(
    hatchet_client_env: dict[str, str],
) -> None:
    plain = _registered_timeouts(Settings())
    tuned = _registered_timeouts(Settings(stage_timeouts="transcribe_track=0.4,generate_title=90"))
    # The engine counts whole seconds: a fraction is rounded up, never truncated to zero.
    assert tuned["transcribe_track"] == "1s" != plain["transcribe_track"]
    assert tuned["generate_title"] == "90s" != plain["generate_title"]
    untouched = set(plain) - {"transcribe_track", "generate_title"}
    assert untouched and all(tuned[k] == plain[k] for k in untouched)


def test_per_track_stages_that_gather_run_in_a_later_fan_out() -> None:
    from reflector_cli.providers.hatchet import common

    layers = [[s.name for s in layer] for layer in common.LAYERS]
    assert layers == [["pad_track"], ["transcribe_track"]]
    assert common.fanout_parents(1) == ("get_recording", common.FANOUTS[0])
    # A one-task child's output comes back bare through a durable parent, keyed otherwise.
    out = {"track": 0, "key": "k"}
    assert workflows._by_task(common.LAYERS[0], out) == {"pad_track": out}
    assert workflows._by_task(common.LAYERS[0], {"pad_track": out}) == {"pad_track": out}
