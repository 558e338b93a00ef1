"""The Celery provider with a real redis-server, a real prefork worker and the real model."""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from celery_env import CeleryWorker, make_meeting, start_redis, stop_redis
from rich.console import Console

from reflector_cli.core.config import Settings, load_settings
from reflector_cli.core.errors import UserError
from reflector_cli.pipeline.runinput import new_run_id, prepare_input
from reflector_cli.providers.celery_app import CeleryProvider
from reflector_cli.providers.recorder import Recorder
from reflector_cli.runs.compare import ComparisonReport, render_table
from reflector_cli.runs.process import run_compare
from reflector_cli.store.events import EventSink
from reflector_cli.store.repo import Store

pytestmark = [pytest.mark.celery, pytest.mark.slow]

# Same on both sides: merge fails once (retried), send_webhook always (non-critical, final).
FAULTS = "merge_transcripts:1,send_webhook:9"


@dataclass
class Env:
    settings: Settings
    meeting: Path
    report: ComparisonReport
    urls: dict[str, str]


@pytest.fixture(scope="module")
def celery_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """Redis + one worker; the fixture meeting compared on local (primary) vs celery (shadow).

    The broker variables are set only while this runs (tests needing them use `broker_env`),
    so tests outside this file never see them.
    """
    base = tmp_path_factory.mktemp("celery")
    urls = start_redis(base / "redis")
    data = base / "data"
    worker_env = {
        **urls,
        "REFLECTOR_DATA_DIR": str(data),
        "REFLECTOR_TEST_FAIL": FAULTS,
        "REFLECTOR_RETRY_BACKOFF": "0",
    }
    worker = CeleryWorker(worker_env, base / "worker.log", concurrency=2)
    try:
        with pytest.MonkeyPatch.context() as mp:
            for k, v in urls.items():
                mp.setenv(k, v)
            worker.wait_ready()
            settings = load_settings(
                data_dir=data, test_fail=FAULTS, retry_backoff_s=0.0, workers=1, provider="local"
            )
            meeting = make_meeting(base / "fixture")
            report = run_compare(str(meeting), ["local", "celery"], settings, reuse=False)
        yield Env(settings, meeting, report, urls)
    finally:
        worker.stop()
        stop_redis(base / "redis")


@pytest.fixture
def broker_env(celery_run: Env, monkeypatch: pytest.MonkeyPatch) -> Env:
    for k, v in celery_run.urls.items():
        monkeypatch.setenv(k, v)
    return celery_run


def _store(env: Env) -> Store:
    return Store(env.settings.db_path)


def _outputs(store: Store, run_id: str) -> dict[tuple[str, int | None], Any]:
    return {
        (r["stage"], r["track"]): json.loads(r["output"]) if r["output"] else None
        for r in store.stage_runs(run_id)
    }


def test_celery_gives_the_same_words_speakers_topics_title_as_local(celery_run: Env) -> None:
    report = celery_run.report
    store = _store(celery_run)
    try:
        local_run, celery_run_id = report.runs["local"], report.runs["celery"]
        t = store.find_transcript(local_run)
        assert t is not None and t["status"] == "ended"
        assert t["run_id"] == local_run, "the shadow celery run must not replace the transcript"
        out = _outputs(store, celery_run_id)
        # Speakers: the participants celery derived equal the committed (local) ones.
        committed = [(p["speaker"], p["name"]) for p in store.participants(t["id"])]
        celery_people = out[("get_participants", None)]["participants"]
        assert [(p["speaker"], p["name"]) for p in celery_people] == committed
        # Words: the celery run's merged transcript text equals the committed words.
        events = store._all(
            "SELECT data FROM events WHERE run_id = ? AND type = 'TRANSCRIPT'", (celery_run_id,)
        )
        assert len(events) == 1
        words = " ".join(w["text"] for w in store.words(t["id"]))
        assert json.loads(events[0]["data"])["text"] == words
        assert len(words.split()) > 50
        # Topics and title.
        topics = [(tp["title"], tp["start"], tp["duration"]) for tp in store.topics(t["id"])]
        celery_topics = out[("detect_topics", None)]["topics"]
        assert [(tp["title"], tp["start"], tp["duration"]) for tp in celery_topics] == topics
        assert out[("generate_title", None)]["title"] == t["title"]
        assert out[("merge_transcripts", None)]["speakers"] == [0, 1, 2]
    finally:
        store.close()


def test_celery_stage_rows_equal_local_including_retries(celery_run: Env) -> None:
    store = _store(celery_run)
    try:

        def rows(run_id: str) -> dict[tuple[str, int | None], tuple[Any, ...]]:
            return {
                (r["stage"], r["track"]): (r["status"], r["attempts"], r["output_hash"])
                for r in store.stage_runs(run_id)
            }

        local, remote = (
            rows(celery_run.report.runs["local"]),
            rows(celery_run.report.runs["celery"]),
        )
        assert local == remote
        assert len(remote) == 18  # 12 single stages + 2 per-track stages x 3 tracks
        assert remote[("merge_transcripts", None)][:2] == ("done", 2)
        assert remote[("send_webhook", None)][:2] == ("failed", 3)
        assert remote[("transcribe_track", 2)][:2] == ("done", 1)
        states = [
            (e["data"]["stage"], e["data"]["state"])
            for e in store.events(store.find_transcript(celery_run.report.runs["celery"])["id"])
            if e["run_id"] == celery_run.report.runs["celery"] and e["type"] == "STAGE"
        ]
        assert states.count(("merge_transcripts", "retrying")) == 1
        assert states.count(("send_webhook", "failed")) == 1
        assert states.count(("transcribe_track", "done")) == 3
        run = store.run(celery_run.report.runs["celery"])
        assert run is not None and (run["status"], run["role"]) == ("ended", "shadow")
    finally:
        store.close()


def test_compare_local_vs_celery_agrees_and_is_stored(celery_run: Env) -> None:
    report = celery_run.report
    assert report.agree, report.diff
    assert report.first_difference is None
    assert all(s.equal for s in report.stages)
    assert report.transcript.wer == {"local": 0.0, "celery": 0.0}
    assert report.transcript.speakers_equal
    assert report.total_wall_s["celery"] and report.total_wall_s["local"]
    assert report.overhead_vs_local["local"] == 1.0
    store = _store(celery_run)
    try:
        rows = store.comparisons()
        assert [r["id"] for r in rows] == [report.id]
        assert rows[0]["agree"] == 1
        assert ComparisonReport.model_validate_json(rows[0]["report"]) == report
    finally:
        store.close()
    console = Console(record=True, width=160)
    console.print(render_table(report))
    text = console.export_text()
    assert "transcribe_track[2]" in text and "agree" in text and "differs" not in text


def test_compare_reuse_takes_the_latest_finished_runs(celery_run: Env) -> None:
    again = run_compare(str(celery_run.meeting), ["local", "celery"], celery_run.settings, True)
    assert again.runs == celery_run.report.runs
    assert again.agree and again.id != celery_run.report.id


def test_bad_input_fails_once_without_retry(
    broker_env: Env, tmp_path: Path, make_track: Callable[..., Path]
) -> None:
    celery_run = broker_env
    folder = tmp_path / "vanished"
    folder.mkdir()
    make_track(folder / "alice.wav", 1.0)
    settings = celery_run.settings
    pipe = prepare_input(str(folder), settings)
    shutil.rmtree(folder)  # the worker finds no folder: a UserError, never retried
    store = _store(celery_run)
    try:
        store.ensure_recording(pipe)
        run_id = new_run_id()
        store.create_run(run_id, pipe, "celery")
        sink = EventSink(store, pipe.transcript_id, run_id)
        log = Recorder(store, settings, pipe, run_id, sink, reuse=False, hooks=False)
        outcome = CeleryProvider(settings, log).run()
        assert (outcome.status, outcome.error_stage) == ("error", "get_recording")
        assert outcome.error and "vanished" in outcome.error
        rows = store.stage_runs(run_id)
        assert [(r["stage"], r["status"], r["attempts"]) for r in rows] == [
            ("get_recording", "failed", 1)
        ]
    finally:
        store.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _provider_run(env: Env, tmp_path: Path, make_track: Callable[..., Path]) -> Any:
    folder = tmp_path / "tone"
    folder.mkdir()
    make_track(folder / "alice.wav", 1.0)
    pipe = prepare_input(str(folder), env.settings)
    store = _store(env)
    try:
        store.ensure_recording(pipe)
        run_id = new_run_id()
        store.create_run(run_id, pipe, "celery")
        log = Recorder(
            store, env.settings, pipe, run_id, EventSink(store, pipe.transcript_id, run_id)
        )
        return CeleryProvider(env.settings, log).run()
    finally:
        store.close()


def test_no_worker_on_the_broker_is_a_clear_error(
    broker_env: Env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, make_track: Callable
) -> None:
    # Another database on the same server: reachable, but no worker consumes there.
    monkeypatch.setenv("CELERY_BROKER_URL", broker_env.urls["CELERY_BROKER_URL"][:-1] + "7")
    with pytest.raises(UserError, match=r"no worker answered; start one with"):
        _provider_run(broker_env, tmp_path, make_track)


def test_unreachable_broker_is_a_clear_error(
    broker_env: Env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, make_track: Callable
) -> None:
    monkeypatch.setenv("CELERY_BROKER_URL", f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(UserError, match=r"celery broker redis://127\.0\.0\.1:\d+/0: unreachable"):
        _provider_run(broker_env, tmp_path, make_track)
