"""Queries over the SQLite store: recordings, transcripts, runs, stage checkpoints and events.

Writes that must land together go through `transaction()` (BEGIN IMMEDIATE … COMMIT), so a
killed process leaves either the old rows or the new ones, never a mix.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reflector_cli.core import models as m
from reflector_cli.store.schema import connect, connect_readonly


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _track_col(track: int | None) -> int:
    return -1 if track is None else track


class Store:
    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        """`readonly`: open an existing database without writing (show/runs/export)."""
        self.path = path
        self.db = connect_readonly(path) if readonly else connect(path)
        self.conn = self.db.conn

    def close(self) -> None:
        self.conn.close()

    def ping(self) -> None:
        """One round trip to the database (a health check)."""
        self.conn.execute("SELECT 1").fetchone()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _one(self, sql: str, params: tuple[Any, ...] = ()) -> dict[str, Any] | None:
        cur = self.conn.execute(sql, params)
        row = cur.fetchone()
        if row is None:
            return None
        return dict(zip([c[0] for c in cur.description], row, strict=True))

    def _all(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        cur = self.conn.execute(sql, params)
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]

    # ------------------------------------------------------------------ recordings/transcripts

    def ensure_recording(self, pipe: m.PipelineInput) -> None:
        ts = now_iso()
        with self.transaction():
            self.conn.execute(
                "INSERT OR IGNORE INTO recordings (id, source_kind, source, created_at)"
                " VALUES (?, ?, ?, ?)",
                (pipe.recording_id, pipe.source_kind, pipe.source, ts),
            )
            self.conn.execute(
                "INSERT OR IGNORE INTO transcripts (id, recording_id, status, created_at,"
                " updated_at) VALUES (?, ?, 'idle', ?, ?)",
                (pipe.transcript_id, pipe.recording_id, ts, ts),
            )

    def transcript(self, transcript_id: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM transcripts WHERE id = ?", (transcript_id,))

    def find_transcript_exact(self, ident: str) -> dict[str, Any] | None:
        """By transcript id, recording id or run id, compared for equality only (no prefixes:
        what `serve` uses, where a guessed prefix must never reveal a transcript)."""
        row = self.transcript(ident)
        if row:
            return row
        row = self._one("SELECT * FROM transcripts WHERE recording_id = ?", (ident,))
        if row:
            return row
        run = self._one("SELECT transcript_id FROM runs WHERE id = ?", (ident,))
        return self.transcript(run["transcript_id"]) if run else None

    def find_transcript(self, ident: str) -> dict[str, Any] | None:
        """By transcript id, recording id, run id or a unique id prefix (CLI convenience)."""
        row = self.find_transcript_exact(ident)
        if row:
            return row
        run = self.run(ident)
        if run:
            return self.transcript(run["transcript_id"])
        return self._unique_prefix("transcripts", ident)

    def _unique_prefix(self, table: str, prefix: str) -> dict[str, Any] | None:
        """The one row whose id starts with `prefix`, compared literally and case-sensitively
        (no LIKE: `%` and `_` are plain characters here)."""
        if not prefix:
            return None
        rows = self._all(
            f"SELECT * FROM {table} WHERE substr(id, 1, ?) = ? LIMIT 2", (len(prefix), prefix)
        )
        return rows[0] if len(rows) == 1 else None

    def list_transcripts(self) -> list[dict[str, Any]]:
        return self._all(
            "SELECT id, recording_id, status, title, duration_s, word_count, updated_at"
            " FROM transcripts ORDER BY updated_at DESC"
        )

    def set_status(
        self,
        transcript_id: str,
        status: str,
        error_stage: str | None = None,
        error_message: str | None = None,
    ) -> None:
        self.conn.execute(
            "UPDATE transcripts SET status = ?, error_stage = ?, error_message = ?,"
            " updated_at = ? WHERE id = ?",
            (status, error_stage, error_message, now_iso(), transcript_id),
        )

    def commit_final(self, doc: m.FinalDoc, run_id: str) -> None:
        """Replace the transcript's content with `doc` in one transaction; status `ended`."""
        tid = doc.transcript_id
        text = " ".join(w.text for w in doc.words)
        with self.transaction():
            cur = self._one("SELECT title, title_locked FROM transcripts WHERE id = ?", (tid,))
            title = cur["title"] if cur and cur["title_locked"] else doc.title
            for table in ("participants", "words", "topics"):
                self.conn.execute(f"DELETE FROM {table} WHERE transcript_id = ?", (tid,))
            self.conn.executemany(
                "INSERT INTO participants VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        tid,
                        p.speaker,
                        p.participant_id,
                        p.name,
                        p.user_id,
                        int(p.consent),
                        p.track_key,
                    )
                    for p in doc.participants
                ],
            )
            self.conn.executemany(
                'INSERT INTO words (transcript_id, idx, speaker, start, "end", text, probability)'
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (tid, i, w.speaker, w.start, w.end, w.text, w.probability)
                    for i, w in enumerate(doc.words)
                ],
            )
            self.conn.executemany(
                "INSERT INTO topics VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (tid, i, t.title, t.summary, t.start, t.duration, t.word_start, t.word_end)
                    for i, t in enumerate(doc.topics)
                ],
            )
            self.conn.execute(
                "UPDATE transcripts SET status = 'ended', run_id = ?, title = ?,"
                " short_summary = ?, long_summary = ?, action_items = ?, duration_s = ?,"
                " language = ?, audio_key = ?, waveform = ?, word_count = ?, text = ?,"
                " error_stage = NULL, error_message = NULL, updated_at = ? WHERE id = ?",
                (
                    run_id,
                    title,
                    doc.short_summary,
                    doc.long_summary,
                    doc.action_items.model_dump_json(),
                    doc.duration_s,
                    doc.language,
                    doc.audio_key,
                    json.dumps(doc.waveform),
                    len(doc.words),
                    text,
                    now_iso(),
                    tid,
                ),
            )
            # The meeting's room and start time name export files and date search hits.
            self.conn.execute(
                "UPDATE recordings SET room = COALESCE(?, room),"
                " started_at_ms = COALESCE(?, started_at_ms) WHERE id = ?",
                (doc.room, doc.started_at_ms, doc.recording_id),
            )

    def set_audio_deleted(self, transcript_id: str) -> None:
        self.conn.execute(
            "UPDATE transcripts SET audio_deleted = 1, audio_key = NULL, updated_at = ?"
            " WHERE id = ?",
            (now_iso(), transcript_id),
        )

    def participants(self, transcript_id: str) -> list[dict[str, Any]]:
        return self._all(
            "SELECT * FROM participants WHERE transcript_id = ? ORDER BY speaker", (transcript_id,)
        )

    def words(self, transcript_id: str) -> list[dict[str, Any]]:
        return self._all(
            'SELECT speaker, start, "end", text, probability FROM words'
            " WHERE transcript_id = ? ORDER BY idx",
            (transcript_id,),
        )

    def topics(self, transcript_id: str) -> list[dict[str, Any]]:
        return self._all(
            "SELECT * FROM topics WHERE transcript_id = ? ORDER BY idx", (transcript_id,)
        )

    # ------------------------------------------------------------------ runs

    def create_run(
        self,
        run_id: str,
        pipe: m.PipelineInput,
        provider: str,
        *,
        role: str = "primary",
        force: bool = False,
        replay_of: str | None = None,
    ) -> None:
        self.conn.execute(
            "INSERT INTO runs (id, recording_id, transcript_id, provider, role, status, input,"
            " force, replay_of, created_at) VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?, ?)",
            (
                run_id,
                pipe.recording_id,
                pipe.transcript_id,
                provider,
                role,
                pipe.model_dump_json(),
                int(force),
                replay_of,
                now_iso(),
            ),
        )

    def set_run(self, run_id: str, **fields: Any) -> None:
        if not fields:
            return
        cols = ", ".join(f"{k} = ?" for k in fields)
        self.conn.execute(f"UPDATE runs SET {cols} WHERE id = ?", (*fields.values(), run_id))

    def finish_run(
        self, run_id: str, status: str, error_stage: str | None = None, error: str | None = None
    ) -> None:
        self.set_run(
            run_id, status=status, error_stage=error_stage, error_message=error, ended_at=now_iso()
        )

    def run(self, run_id: str) -> dict[str, Any] | None:
        row = self._one("SELECT * FROM runs WHERE id = ?", (run_id,))
        return row if row is not None else self._unique_prefix("runs", run_id)

    def runs(self, limit: int = 50, recording_id: str | None = None) -> list[dict[str, Any]]:
        if recording_id:
            return self._all(
                "SELECT * FROM runs WHERE recording_id = ? ORDER BY created_at DESC LIMIT ?",
                (recording_id, limit),
            )
        return self._all("SELECT * FROM runs ORDER BY created_at DESC LIMIT ?", (limit,))

    # ------------------------------------------------------------------ stage checkpoints

    def stage_started(
        self,
        run_id: str,
        stage: str,
        track: int | None,
        input_hash: str,
        code_version: str,
        inp: str,
    ) -> int:
        """Record an attempt starting; returns the attempt number (1-based)."""
        t = _track_col(track)
        ts = now_iso()
        self.conn.execute(
            "INSERT INTO stage_runs (run_id, stage, track, status, attempts, input_hash,"
            " code_version, input, started_at) VALUES (?, ?, ?, 'running', 1, ?, ?, ?, ?)"
            " ON CONFLICT (run_id, stage, track) DO UPDATE SET status = 'running',"
            " attempts = attempts + 1, error = NULL",
            (run_id, stage, t, input_hash, code_version, inp, ts),
        )
        row = self._one(
            "SELECT attempts FROM stage_runs WHERE run_id = ? AND stage = ? AND track = ?",
            (run_id, stage, t),
        )
        return int(row["attempts"]) if row else 1

    def stage_finished(
        self,
        run_id: str,
        stage: str,
        track: int | None,
        status: str,
        *,
        output: str | None = None,
        output_hash: str | None = None,
        error: str | None = None,
        reused_from: str | None = None,
        input_hash: str | None = None,
        code_version: str | None = None,
        inp: str | None = None,
    ) -> None:
        t = _track_col(track)
        ts = now_iso()
        self.conn.execute(
            "INSERT INTO stage_runs (run_id, stage, track, status, attempts, input_hash,"
            " code_version, input, output, output_hash, reused_from, error, started_at,"
            " ended_at) VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (run_id, stage, track) DO UPDATE SET status = excluded.status,"
            " output = excluded.output, output_hash = excluded.output_hash,"
            " reused_from = excluded.reused_from, error = excluded.error,"
            " ended_at = excluded.ended_at",
            (
                run_id,
                stage,
                t,
                status,
                input_hash,
                code_version,
                inp,
                output,
                output_hash,
                reused_from,
                error,
                ts,
                ts,
            ),
        )

    def stage_runs(self, run_id: str) -> list[dict[str, Any]]:
        rows = self._all(
            "SELECT * FROM stage_runs WHERE run_id = ? ORDER BY started_at, stage, track",
            (run_id,),
        )
        for r in rows:
            r["track"] = None if r["track"] == -1 else r["track"]
        return rows

    def reusable(
        self, recording_id: str, stage: str, track: int | None, input_hash: str, code_version: str
    ) -> dict[str, Any] | None:
        """The newest finished checkpoint of this stage with the same input and code."""
        return self._one(
            "SELECT s.* FROM stage_runs s JOIN runs r ON r.id = s.run_id"
            " WHERE r.recording_id = ? AND s.stage = ? AND s.track = ? AND s.input_hash = ?"
            " AND s.code_version = ? AND s.status = 'done' AND r.role != 'shadow'"
            " ORDER BY s.ended_at DESC LIMIT 1",
            (recording_id, stage, _track_col(track), input_hash, code_version),
        )

    # ------------------------------------------------------------------ events

    def add_event(
        self, transcript_id: str, run_id: str | None, event_type: str, data: dict[str, Any]
    ) -> int:
        cur = self.conn.execute(
            "INSERT INTO events (transcript_id, run_id, ts, type, data) VALUES (?, ?, ?, ?, ?)",
            (transcript_id, run_id, now_iso(), event_type, json.dumps(data, default=str)),
        )
        return int(cur.lastrowid or 0)

    def events(self, transcript_id: str, after_id: int = 0) -> list[dict[str, Any]]:
        rows = self._all(
            "SELECT * FROM events WHERE transcript_id = ? AND id > ? ORDER BY id",
            (transcript_id, after_id),
        )
        for r in rows:
            r["data"] = json.loads(r["data"])
        return rows

    # ------------------------------------------------------------------ comparisons

    def add_comparison(self, row: dict[str, Any]) -> None:
        self.db["comparisons"].insert(row)

    def comparisons(self, limit: int = 50) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM comparisons ORDER BY created_at DESC LIMIT ?", (limit,))
