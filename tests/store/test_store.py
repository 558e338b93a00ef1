"""The SQLite store: migrations, one-transaction finalize, checkpoints, append-only events."""

from __future__ import annotations

import fcntl
import sqlite3
import threading
from pathlib import Path

import pytest

from reflector_cli.core import models as m
from reflector_cli.store.repo import Store
from reflector_cli.store.schema import MIGRATIONS


def pipe(rid: str = "rec-1") -> m.PipelineInput:
    return m.PipelineInput(
        recording_id=rid,
        transcript_id="t-" + rid,
        source_kind="folder",
        source="/x",
        asr=m.AsrOptions(model="/m"),
    )


def doc(title: str = "Launch Plan", n_words: int = 3) -> m.FinalDoc:
    words = [m.Word(text=f"w{i}", start=i, end=i + 0.5, speaker=i % 2) for i in range(n_words)]
    return m.FinalDoc(
        transcript_id="t-rec-1",
        recording_id="rec-1",
        title=title,
        short_summary="short",
        long_summary="# Quick recap",
        action_items=m.ActionItems(),
        duration_s=10.0,
        language="en",
        participants=[
            m.Participant(speaker=0, participant_id="a", name="Alice", track_key="k0"),
            m.Participant(speaker=1, participant_id="b", name="Bob", track_key="k1"),
        ],
        topics=[
            m.Topic(title="T", summary="S", start=0, duration=2, word_start=0, word_end=n_words)
        ],
        words=words,
        waveform=[0.0, 1.0],
        audio_key="rec-1/mixdown.mp3",
    )


def test_migrations_run_once_and_enable_wal(tmp_path: Path) -> None:
    s = Store(tmp_path / "db.sqlite3")
    s.close()
    s = Store(tmp_path / "db.sqlite3")
    assert s.conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert s.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_store_opened_while_another_sets_up_the_new_file_waits_for_it(tmp_path: Path) -> None:
    """Several runs started at once on a fresh data dir: one connection creates the schema
    (a write, before the file is in WAL mode) while another opens the same file. SQLite fails
    a switch to WAL at once, without waiting, while a rollback-mode write is open; opening
    waits for the set-up instead."""
    path = tmp_path / "reflector.sqlite3"
    with open(path.with_name(path.name + ".migrate.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        first = sqlite3.connect(path, isolation_level=None)
        first.execute("BEGIN IMMEDIATE")
        first.execute("CREATE TABLE setting_up (x)")
        opened: list[object] = []
        second = threading.Thread(target=lambda: opened.append(_open(path)))
        second.start()
        second.join(timeout=1.0)
        assert second.is_alive() and not opened, f"did not wait for the set-up: {opened}"
        first.execute("COMMIT")
        first.close()
    second.join(timeout=30)
    store = opened[0]
    assert isinstance(store, Store), store
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    store.close()


def _open(path: Path) -> Store | Exception:
    try:
        return Store(path)
    except Exception as exc:  # noqa: BLE001 - the test reports what opening raised
        return exc


def test_commit_final_replaces_rows_and_is_searchable(tmp_path: Path) -> None:
    s = Store(tmp_path / "db.sqlite3")
    s.ensure_recording(pipe())
    s.commit_final(doc(n_words=5), "r-1")
    s.commit_final(doc(title="Budget Review", n_words=3), "r-2")
    t = s.transcript("t-rec-1")
    assert t["status"] == "ended" and t["title"] == "Budget Review" and t["run_id"] == "r-2"
    assert len(s.words("t-rec-1")) == 3
    assert [p["name"] for p in s.participants("t-rec-1")] == ["Alice", "Bob"]
    hits = s.conn.execute(
        "SELECT rowid FROM transcripts_fts WHERE transcripts_fts MATCH 'budget'"
    ).fetchall()
    assert len(hits) == 1


def test_commit_final_is_all_or_nothing(tmp_path: Path) -> None:
    s = Store(tmp_path / "db.sqlite3")
    s.ensure_recording(pipe())
    s.commit_final(doc(n_words=4), "r-1")
    # A duplicate speaker violates the participants primary key half-way through the commit.
    bad = doc(n_words=2).model_copy(
        update={"participants": [doc().participants[0], doc().participants[0]]}
    )
    with pytest.raises(sqlite3.IntegrityError):
        s.commit_final(bad, "r-2")
    assert len(s.words("t-rec-1")) == 4
    assert s.transcript("t-rec-1")["run_id"] == "r-1"


def test_title_set_by_user_is_never_overwritten(tmp_path: Path) -> None:
    s = Store(tmp_path / "db.sqlite3")
    s.ensure_recording(pipe())
    s.conn.execute("UPDATE transcripts SET title = 'Mine', title_locked = 1")
    s.commit_final(doc(title="Generated"), "r-1")
    assert s.transcript("t-rec-1")["title"] == "Mine"


def test_checkpoints_attempts_and_reuse_lookup(tmp_path: Path) -> None:
    s = Store(tmp_path / "db.sqlite3")
    p = pipe()
    s.ensure_recording(p)
    s.create_run("r-1", p, "local")
    assert s.stage_started("r-1", "pad_track", 0, "ih", "cv", "{}") == 1
    assert s.stage_started("r-1", "pad_track", 0, "ih", "cv", "{}") == 2
    s.stage_finished("r-1", "pad_track", 0, "done", output='{"x":1}', output_hash="h")
    assert s.reusable("rec-1", "pad_track", 0, "ih", "cv")["run_id"] == "r-1"
    assert s.reusable("rec-1", "pad_track", 0, "ih", "other") is None
    assert s.reusable("rec-1", "pad_track", 1, "ih", "cv") is None
    rows = s.stage_runs("r-1")
    assert rows[0]["attempts"] == 2 and rows[0]["track"] == 0


def test_events_are_append_only_rows(tmp_path: Path) -> None:
    s = Store(tmp_path / "db.sqlite3")
    first = s.add_event("t1", "r1", "STATUS", {"value": "processing"})
    s.add_event("t1", "r1", "TOPIC", {"title": "x"})
    assert [e["type"] for e in s.events("t1")] == ["STATUS", "TOPIC"]
    assert [e["type"] for e in s.events("t1", after_id=first)] == ["TOPIC"]


def test_id_lookups_are_literal_prefixes_or_exact(tmp_path: Path) -> None:
    s = Store(tmp_path / "db.sqlite3")
    s.ensure_recording(pipe("rec-only"))
    s.create_run("r-rec-only", pipe("rec-only"), "local")
    # With a single row, a LIKE wildcard would be a "unique prefix" of it.
    for wild in ("%", "_", "t-%", "t-re_", "r%", "T-REC-ONLY"):
        assert s.find_transcript(wild) is None and s.run(wild) is None, wild
    for rid in ("rec-abc", "rec-abd"):
        s.ensure_recording(pipe(rid))
        s.create_run("r-" + rid, pipe(rid), "local")
    s.ensure_recording(pipe("rec_%x"))
    # `%` and `_` are plain characters: neither matches "anything".
    for wild in ("%", "_", "t-%", "t-re_", "t-rec-ab_", "r-%", "T-REC-ABC"):
        assert s.find_transcript(wild) is None, wild
    assert s.run("%") is None and s.run("r-rec-ab_") is None
    # A literal prefix still finds its one row; an ambiguous one finds none.
    assert s.find_transcript("t-rec-abc")["id"] == "t-rec-abc"
    assert s.find_transcript("t-rec-abd"[:-1]) is None
    assert s.find_transcript("t-rec_%")["id"] == "t-rec_%x"
    assert s.run("r-rec-abd")["id"] == "r-rec-abd"
    # The server's lookup takes no prefix at all, only whole ids of any kind.
    assert s.find_transcript_exact("t-rec-ab") is None
    assert s.find_transcript_exact("t-rec_%") is None
    assert s.find_transcript_exact("rec-abc")["id"] == "t-rec-abc"
    assert s.find_transcript_exact("r-rec-abd")["id"] == "t-rec-abd"
    s.close()
