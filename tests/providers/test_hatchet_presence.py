"""Hatchet on a real engine: runs submitted before any worker wait for one; storages must match."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reflector_cli.core.config import load_settings
from reflector_cli.providers import hatchet as hp
from reflector_cli.store.repo import Store
from tests.providers.conftest import ROOT

pytestmark = [pytest.mark.hatchet, pytest.mark.slow]


def _submitter(meeting: Path, data: Path, *extra: str, log: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "reflector_cli.cli", "process", str(meeting), "--json"]
    cmd += ["--provider", "hatchet", "--data-dir", str(data), *extra]
    with open(log, "wb") as err:
        return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=err)


def _latest(data: Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The newest run in `data` and its transcript."""
    store = Store(data / "reflector.sqlite3")
    try:
        run = store.runs(1)[0]
        return run, store.transcript(run["transcript_id"])
    finally:
        store.close()


def _wait_for_line(log: Path, text: str, proc: subprocess.Popen[bytes]) -> float:
    t0 = time.monotonic()
    while text not in log.read_text():
        assert proc.poll() is None, f"submitter ended: {log.read_text()}"
        assert time.monotonic() - t0 < 120, f"no {text!r}: {log.read_text()}"
        time.sleep(0.1)
    return time.monotonic() - t0


def test_a_run_submitted_before_any_worker_waits_and_completes_once_one_starts(
    meeting: Path, tmp_path: Path, hatchet_client_env: dict[str, str], start_worker: Callable
) -> None:
    data = tmp_path / "data"
    log = tmp_path / "submitter.err"
    t0 = time.monotonic()
    proc = _submitter(meeting, data, log=log)
    ns = hatchet_client_env["HATCHET_CLIENT_NAMESPACE"]
    try:
        said = _wait_for_line(log, f"waiting for a worker in namespace {ns}_ on ", proc)
        time.sleep(8)  # the bar: the worker starts 8 s after the submitter
        assert proc.poll() is None, log.read_text()
        t_worker = time.monotonic()
        start_worker(data)
        healthy = time.monotonic() - t_worker
        out, _ = proc.communicate(timeout=600)
        print(
            f"waiting line after {said:.1f} s; worker healthy {healthy:.1f} s after its start; "
            f"run done {time.monotonic() - t0:.1f} s after submitting"
        )
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, log.read_text()
    doc = json.loads(out)
    assert doc["status"] == "ended" and doc["word_count"] > 50
    assert "NotFound" not in log.read_text()
    assert log.read_text().count("waiting for a worker") == 1


def test_worker_and_submitter_on_different_data_dirs_is_one_line_naming_both(
    meeting: Path, tmp_path: Path, hatchet_client_env: dict[str, str], start_worker: Callable
) -> None:
    theirs, mine = tmp_path / "worker-data", tmp_path / "cli-data"
    start_worker(theirs)
    log = tmp_path / "submitter.err"
    proc = _submitter(meeting, mine, log=log)
    proc.communicate(timeout=300)
    lines = [ln for ln in log.read_text().splitlines() if ln.strip()]
    assert proc.returncode == 1, lines
    assert len(lines) == 1, lines
    assert str(theirs.resolve()) in lines[0] and str(mine.resolve()) in lines[0]
    assert "REFLECTOR_DATA_DIR" in lines[0] and "Traceback" not in lines[0]
    run, transcript = _latest(mine)
    assert run["status"] == "error" and run["engine_run_id"] is None, "nothing was submitted"
    assert transcript is not None and transcript["status"] != "processing"


def test_no_wait_with_no_worker_returns_a_queued_run_that_a_later_worker_runs(
    meeting: Path, tmp_path: Path, hatchet_client_env: dict[str, str], start_worker: Callable
) -> None:
    data = tmp_path / "data"
    settings = load_settings(data_dir=data)
    t0 = time.monotonic()
    run_id = hp.submit_run(str(meeting), settings)
    submit_s = time.monotonic() - t0
    store = Store(settings.db_path)
    try:
        run = store.run(run_id)
        assert run is not None and run["status"] == hp.SUBMITTED and run["engine_run_id"]
        start_worker(data)
        deadline = time.monotonic() + 300
        while (info := hp.sync_run(store, run_id, settings))["status"] == hp.SUBMITTED:
            assert time.monotonic() < deadline, info
            time.sleep(0.5)
    finally:
        store.close()
    assert info["status"] == "ended", info
    print(f"no-wait submit with no worker returned in {submit_s:.2f} s")


def test_waiting_submitter_stopped_by_sigterm_marks_its_run_interrupted(
    meeting: Path, tmp_path: Path, hatchet_client_env: dict[str, str]
) -> None:
    data = tmp_path / "data"
    log = tmp_path / "submitter.err"
    proc = _submitter(meeting, data, "--wait-for-worker", "300", log=log)
    _wait_for_line(log, "waiting for a worker", proc)
    os.kill(proc.pid, signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, log.read_text()
    run, transcript = _latest(data)
    assert run["status"] == "interrupted"
    assert transcript is not None and transcript["status"] == "idle"
