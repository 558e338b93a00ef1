"""`reflector process A B C` pipelined: each recording its own correct result, at most
`--parallel` recordings and `--workers` heavy stages at once, a failing one stops no other."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

from benchmarks.proctable import gone_within
from benchmarks.throughput import copies
from reflector_cli.runs.batch import STOP_WAIT_S
from tests.cli.conftest import FIXTURE, REFLECTOR, ROOT, cli, cli_json
from tests.cli.test_lifetime import GONE_S, _db_rows, _wait_for_row

HEAVY = ("pad_track", "transcribe_track", "mixdown_tracks", "generate_waveform")


def _most_at_once(spans: list[tuple[str, str]]) -> int:
    """The most intervals open at one instant (an end at the same instant as a start first)."""
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def _content(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in ("transcript_id", "run_id")}


def _words(data: Path, transcript_id: str) -> list[tuple[Any, ...]]:
    doc = cli_json("export", transcript_id, "--format", "json", data_dir=data)
    return [(w["speaker"], w["start"], w["end"], w["text"]) for w in doc["words"]]


def test_three_recordings_pipelined_each_correct_bounded_and_one_failure_isolated(
    tmp_path: Path, processed: tuple[Path, dict[str, Any]]
) -> None:
    ref_data, reference = processed
    meetings = copies(FIXTURE, 4, tmp_path)
    good, failing = [meetings[0], meetings[2], meetings[3]], meetings[1]
    data = tmp_path / "data"
    rid = cli_json("process", str(failing), "--dry-run", data_dir=data)["recording_id"]
    # The failing recording's storage folder is taken by a file: its get_recording fails for
    # real (after its retries), after its run started; nothing else is in the way of the others.
    data.mkdir(exist_ok=True)
    (data / rid).write_text("in the way")
    # The first folder again at the end: it waits for the first and reuses its result.
    args = [str(good[0]), str(failing), str(good[1]), str(good[2]), str(good[0])]
    res = cli(
        "process", *args, "--json", "--parallel", "2", "--workers", "2", data_dir=data, check=False
    )
    assert res.returncode == 1, res.stderr
    docs = json.loads(res.stdout)
    assert [d["status"] for d in docs] == ["ended", "error", "ended", "ended", "ended"], res.stderr
    assert docs[4] == docs[0]
    assert f"error: {failing}: stage get_recording failed" in res.stderr
    assert len({d["transcript_id"] for d in docs[:4]}) == 4

    # Each recording has its own result, the same as the meeting processed alone.
    ref_words = _words(ref_data, reference["transcript_id"])
    for doc in (docs[0], docs[2], docs[3]):
        assert _content(doc) == _content(reference)
        assert _words(data, doc["transcript_id"]) == ref_words

    runs = _db_rows(data, "SELECT id, status, created_at, ended_at FROM runs ORDER BY created_at")
    assert sorted(r[1] for r in runs) == ["ended", "ended", "ended", "error"]
    # Never more than --parallel recordings in flight, and pipelined: two did overlap.
    assert _most_at_once([(r[2], r[3]) for r in runs]) == 2
    heavy = _db_rows(
        data,
        "SELECT started_at, ended_at FROM stage_runs WHERE started_at IS NOT NULL"
        f" AND ended_at IS NOT NULL AND stage IN {HEAVY}",
    )
    assert len(heavy) == 3 * (3 + 3 + 1 + 1)
    assert _most_at_once(heavy) <= 2
    # Started in the order given: the first two at once, the others as places came free.
    source = dict(
        _db_rows(
            data,
            "SELECT r.id, rec.source FROM runs r JOIN recordings rec ON rec.id = r.recording_id",
        )
    )
    first_two = {Path(source[r[0]]).name for r in runs[:2]}
    assert first_two == {good[0].name, failing.name}


def test_sigterm_mid_batch_marks_every_running_run_interrupted_and_leaves_no_process(
    tmp_path: Path,
) -> None:
    meetings = [str(m) for m in copies(FIXTURE, 3, tmp_path)]
    data = tmp_path / "data"
    env = {**os.environ, "REFLECTOR_DATA_DIR": str(data), "REFLECTOR_RETRY_BACKOFF": "0"}
    proc = subprocess.Popen(
        [*REFLECTOR, "process", *meetings, "--json", "--parallel", "2", "--workers", "2"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    # Two recordings in flight, one of them in ASR (the shared workers are busy).
    _wait_for_row(data, "SELECT 1 FROM runs WHERE status = 'running' LIMIT 1 OFFSET 1", proc)
    asr = "SELECT 1 FROM stage_runs WHERE stage = 'transcribe_track' AND status = 'running'"
    _wait_for_row(data, asr, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=GONE_S + STOP_WAIT_S)
    assert proc.returncode == 128 + signal.SIGTERM, err.decode()[-2000:]
    assert gone_within(data, GONE_S)[0] == []
    runs = _db_rows(data, "SELECT status, error_message FROM runs")
    assert len(runs) == 2, runs  # the third never started
    assert all(s == "interrupted" and "SIGTERM" in (e or "") for s, e in runs), runs
    assert {s for (s,) in _db_rows(data, "SELECT status FROM transcripts")} == {"idle"}
    # The same command resumes all three.
    docs = cli_json("process", *meetings, data_dir=data)
    assert [d["status"] for d in docs] == ["ended"] * 3
