"""No process outlives `reflector process`: kills and stop signals at any moment, then resume;
stop signals mark the run `interrupted`; stage timeouts kill the stage's worker."""

from __future__ import annotations

import base64
import json
import os
import random
import re
import resource
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.proctable import belonging, gone_within
from tests.cli.conftest import FIXTURE, REFLECTOR, ROOT, cli_json
from tests.sources.daily_fake import free_port

GONE_S = 5.0


def _start(data: Path, **env: str) -> subprocess.Popen[bytes]:
    full = {**os.environ, "REFLECTOR_DATA_DIR": str(data), "REFLECTOR_RETRY_BACKOFF": "0", **env}
    return subprocess.Popen(
        [*REFLECTOR, "process", str(FIXTURE), "--json"],
        cwd=ROOT,
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _db_rows(data: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(data / "reflector.sqlite3", timeout=10)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _wait_for_row(data: Path, sql: str, proc: subprocess.Popen[bytes]) -> None:
    """Until `sql` returns a row (the database may not exist or have its schema yet)."""
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
        assert time.monotonic() < deadline, f"never: {sql}"
        try:
            if (data / "reflector.sqlite3").exists() and _db_rows(data, sql):
                return
        except sqlite3.OperationalError:
            pass  # schema being created
        time.sleep(0.05)


# Stages finished (not reused) over every run so far.
_FRESH_DONE = (
    "SELECT COUNT(*) FROM stage_runs WHERE status = 'done' AND reused_from IS NULL "
    "HAVING COUNT(*) >= {n}"
)
# ...and a heavy stage still running: the run is mid-work, not in its last light stages (which
# take ~0.1 s together, so a kill keyed to the count alone could find the run already ended).
_MID_RUN = (
    "SELECT 1 FROM stage_runs WHERE status = 'running' AND stage IN "
    "('pad_track', 'transcribe_track', 'mixdown_tracks') "
    "AND EXISTS (" + _FRESH_DONE + ")"
)


def _strip(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "run_id"}


def test_four_kills_leave_no_process_and_the_rerun_matches(
    tmp_path: Path, processed: tuple[Path, dict[str, Any]]
) -> None:
    _, reference = processed
    data = tmp_path / "data"
    rng = random.Random(12)
    # Each kill lands once a given number of stages has finished across the runs so far (0:
    # during start-up) while a heavy stage still runs, plus a random moment: a whole run takes
    # ~3 s, so fixed delays would find it ended, and a resumed run reuses what the killed ones
    # finished. (Keyed to the count alone, the last kill found the run already over in 4 of 7
    # runs once the VAD got faster: its last 7 stages are light.)
    plan = ((signal.SIGKILL, 0), (signal.SIGKILL, 3), (signal.SIGTERM, 6), (signal.SIGKILL, 8))
    for sig, finished in plan:
        proc = _start(data)
        if finished:
            _wait_for_row(data, _MID_RUN.format(n=finished), proc)
        time.sleep(rng.uniform(0.0, 0.1) if finished else rng.uniform(0.2, 0.8))
        alive = belonging(data)
        assert proc.pid in alive
        proc.send_signal(sig)
        # A caller reading the output (`$(reflector process …)`) is not held up by children.
        proc.communicate(timeout=GONE_S)
        left, _ = gone_within(data, GONE_S)
        assert left == [], f"after {sig.name}: {left} still running"
    resumed = cli_json("process", str(FIXTURE), data_dir=data)
    assert _strip(resumed) == _strip(reference)
    statuses = [r["status"] for r in cli_json("runs", data_dir=data)]
    assert statuses[0] == "ended" and set(statuses[1:]) <= {"interrupted"}, statuses
    assert _db_rows(data, "PRAGMA integrity_check") == [("ok",)]


def test_sigterm_and_sighup_mark_the_run_interrupted_and_the_transcript_idle(
    tmp_path: Path,
) -> None:
    for sig in (signal.SIGTERM, signal.SIGHUP):
        data = tmp_path / sig.name
        proc = _start(data)
        done = "SELECT 1 FROM stage_runs WHERE stage = 'get_recording' AND status = 'done'"
        _wait_for_row(data, done, proc)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=GONE_S)
        assert proc.returncode == 128 + sig, err
        assert f"interrupted ({sig.name})" in err.decode()
        run = cli_json("runs", data_dir=data)[0]
        assert run["status"] == "interrupted" and sig.name in run["error_message"]
        shown = cli_json("show", run["transcript_id"], data_dir=data)
        assert shown["status"] == "idle"
        assert gone_within(data, GONE_S)[0] == []


def test_a_sigkilled_run_is_reported_interrupted_and_its_transcript_idle(tmp_path: Path) -> None:
    data = tmp_path / "data"
    proc = _start(data)
    _wait_for_row(data, "SELECT 1 FROM runs WHERE status = 'running'", proc)
    _wait_for_row(data, _FRESH_DONE.format(n=2), proc)  # mid-run, whatever the machine's speed
    proc.kill()
    proc.communicate(timeout=GONE_S)
    assert _db_rows(data, "SELECT status FROM runs") == [("running",)], "nothing ran the cleanup"
    run = cli_json("runs", data_dir=data)[0]
    assert run["status"] == "interrupted"
    assert cli_json("runs", "show", run["id"], data_dir=data)["status"] == "interrupted"
    assert _db_rows(data, "SELECT status FROM transcripts") == [("idle",)]


def test_a_stage_over_its_timeout_is_killed_and_retried_then_the_run_fails(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    proc = _start(data, REFLECTOR_STAGE_TIMEOUTS="transcribe_track=0.2")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err
    # Tracks run in parallel: whichever used up its attempts first is the run's error.
    assert re.search(r"transcribe_track \(track \d\): timed out after 0\.2 s", err.decode()), err
    rows = _db_rows(
        data, "SELECT attempts, status, error FROM stage_runs WHERE stage = 'transcribe_track'"
    )
    # Declared retries: 2, so three attempts of the track that failed for good.
    assert (3, "failed") in [(a, s) for a, s, _ in rows], rows
    assert all("timed out" in (e or "") for _, _, e in rows), rows
    assert gone_within(data, GONE_S)[0] == []
    # Without the tiny timeout the same command resumes and finishes.
    assert cli_json("process", str(FIXTURE), data_dir=data)["status"] == "ended"


class _Silent:
    """A TCP server that accepts and never answers: a Daily API that hangs."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for c in self.held:
            c.close()


def test_serve_killed_takes_the_runs_it_started_with_it(tmp_path: Path) -> None:
    from reflector_cli.intake.server import sign_daily

    data, daily = tmp_path / "data", _Silent()
    secret = base64.b64encode(b"lifetime-secret-0123456789abcdef").decode()
    port = free_port()
    env = {
        **os.environ,
        "REFLECTOR_DATA_DIR": str(data),
        "DAILY_WEBHOOK_SECRET": secret,
        "DAILY_API_KEY": "k",
        "DAILY_API_URL": f"http://127.0.0.1:{daily.port}",
    }
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [*REFLECTOR, "serve", "--port", str(port)], cwd=ROOT, env=env, stdout=log, stderr=log
    )
    try:
        _wait_http(f"http://127.0.0.1:{port}/health", proc)
        rid = "4f2b9c1e-6a0d-4e8b-9a51-2d7c3e8f1a61"
        body = json.dumps(
            {
                "type": "recording.ready-to-download",
                "id": "e1",
                "event_ts": time.time(),
                "payload": {"type": "raw-tracks", "recording_id": rid, "tracks": []},
            }
        ).encode()
        ts = str(int(time.time()))
        headers = {"X-Webhook-Timestamp": ts, "X-Webhook-Signature": sign_daily(secret, ts, body)}
        resp = httpx.post(
            f"http://127.0.0.1:{port}/v1/daily/webhook", content=body, headers=headers
        )
        assert resp.json()["status"] == "started", resp.text
        deadline = time.monotonic() + 30
        while not [p for p in belonging(data) if p != proc.pid]:
            assert time.monotonic() < deadline, "no child started"
            time.sleep(0.05)
        time.sleep(2.0)  # the child is up and waiting on the (silent) Daily API
        children = [p for p in belonging(data) if p != proc.pid]
        proc.kill()
        proc.wait(timeout=10)
        left, waited = gone_within(data, GONE_S)
        assert left == [], f"{left} outlived serve ({len(children)} children)"
        print(f"serve SIGKILL: {len(children)} children gone in {waited:.2f} s")
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
        daily.close()


def _wait_http(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None and time.monotonic() < deadline, "serve did not start"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)


def test_a_refused_database_write_is_one_line_and_the_run_is_not_left_running(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    proc = _start(data)
    done = "SELECT 1 FROM stage_runs WHERE stage = 'get_recording' AND status = 'done'"
    _wait_for_row(data, done, proc)
    # A file-size limit just above the database's current size: SQLite's next growth is
    # refused by the kernel, as on a full disk (a real refusal, not a patched function).
    db = data / "reflector.sqlite3"
    grown = max(p.stat().st_size for p in (db, db.with_name(db.name + "-wal")) if p.exists())
    resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (grown + 1001, grown + 1001))
    _, err = proc.communicate(timeout=300)
    lines = [ln for ln in err.decode().splitlines() if ln.strip()]
    assert proc.returncode == 1, lines
    assert lines[-1].startswith("error: database: ") and "free some space" in lines[-1], lines
    assert "Traceback" not in err.decode() and "unexpected" not in lines[-1]
    run = cli_json("runs", data_dir=data)[0]
    assert run["status"] in ("interrupted", "error"), run
    shown = cli_json("show", run["transcript_id"], data_dir=data)
    assert shown["status"] != "processing"
    assert _db_rows(data, "PRAGMA integrity_check") == [("ok",)]
    assert cli_json("process", str(FIXTURE), data_dir=data)["status"] == "ended"
