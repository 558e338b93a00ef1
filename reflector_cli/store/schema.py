"""SQLite schema as an ordered list of migrations, applied once each and tracked by user_version.

Only ever append migrations: a database created by an older release upgrades in place.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import sqlite_utils

from reflector_cli.core.errors import UserError


def _m1_core(db: sqlite_utils.Database) -> None:
    db.executescript(
        """
        CREATE TABLE IF NOT EXISTS recordings (
            id TEXT PRIMARY KEY,
            source_kind TEXT NOT NULL,
            source TEXT NOT NULL,
            room TEXT,
            started_at_ms INTEGER,
            created_at TEXT NOT NULL
        );
        CREATE TABLE IF NOT EXISTS transcripts (
            id TEXT PRIMARY KEY,
            recording_id TEXT NOT NULL REFERENCES recordings(id),
            status TEXT NOT NULL,
            run_id TEXT,
            title TEXT,
            title_locked INTEGER NOT NULL DEFAULT 0,
            short_summary TEXT,
            long_summary TEXT,
            action_items TEXT,
            duration_s REAL,
            language TEXT,
            audio_key TEXT,
            audio_deleted INTEGER NOT NULL DEFAULT 0,
            waveform TEXT,
            word_count INTEGER NOT NULL DEFAULT 0,
            text TEXT,
            error_stage TEXT,
            error_message TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE IF NOT EXISTS participants (
            transcript_id TEXT NOT NULL REFERENCES transcripts(id),
            speaker INTEGER NOT NULL,
            participant_id TEXT NOT NULL,
            name TEXT NOT NULL,
            user_id TEXT,
            consent INTEGER NOT NULL,
            track_key TEXT NOT NULL,
            PRIMARY KEY (transcript_id, speaker)
        );
        CREATE TABLE IF NOT EXISTS words (
            transcript_id TEXT NOT NULL REFERENCES transcripts(id),
            idx INTEGER NOT NULL,
            speaker INTEGER NOT NULL,
            start REAL NOT NULL,
            "end" REAL NOT NULL,
            text TEXT NOT NULL,
            PRIMARY KEY (transcript_id, idx)
        );
        CREATE TABLE IF NOT EXISTS topics (
            transcript_id TEXT NOT NULL REFERENCES transcripts(id),
            idx INTEGER NOT NULL,
            title TEXT NOT NULL,
            summary TEXT NOT NULL,
            start REAL NOT NULL,
            duration REAL NOT NULL,
            word_start INTEGER NOT NULL,
            word_end INTEGER NOT NULL,
            PRIMARY KEY (transcript_id, idx)
        );
        CREATE TABLE IF NOT EXISTS runs (
            id TEXT PRIMARY KEY,
            recording_id TEXT NOT NULL REFERENCES recordings(id),
            transcript_id TEXT NOT NULL,
            provider TEXT NOT NULL,
            role TEXT NOT NULL DEFAULT 'primary',
            status TEXT NOT NULL,
            input TEXT NOT NULL,
            force INTEGER NOT NULL DEFAULT 0,
            replay_of TEXT,
            engine_run_id TEXT,
            error_stage TEXT,
            error_message TEXT,
            created_at TEXT NOT NULL,
            ended_at TEXT
        );
        CREATE INDEX IF NOT EXISTS runs_recording ON runs(recording_id, created_at);
        CREATE TABLE IF NOT EXISTS stage_runs (
            run_id TEXT NOT NULL REFERENCES runs(id),
            stage TEXT NOT NULL,
            track INTEGER NOT NULL DEFAULT -1,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            input_hash TEXT,
            code_version TEXT,
            input TEXT,
            output TEXT,
            output_hash TEXT,
            reused_from TEXT,
            error TEXT,
            started_at TEXT,
            ended_at TEXT,
            PRIMARY KEY (run_id, stage, track)
        );
        CREATE INDEX IF NOT EXISTS stage_runs_reuse
            ON stage_runs(stage, track, input_hash, code_version);
        CREATE TABLE IF NOT EXISTS events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            transcript_id TEXT NOT NULL,
            run_id TEXT,
            ts TEXT NOT NULL,
            type TEXT NOT NULL,
            data TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS events_transcript ON events(transcript_id, id);
        CREATE TABLE IF NOT EXISTS comparisons (
            id TEXT PRIMARY KEY,
            recording_id TEXT NOT NULL,
            created_at TEXT NOT NULL,
            providers TEXT NOT NULL,
            runs TEXT NOT NULL,
            agree INTEGER NOT NULL,
            report TEXT NOT NULL
        );
        """
    )


def _m2_search(db: sqlite_utils.Database) -> None:
    db["transcripts"].enable_fts(
        ["title", "short_summary", "text"], create_triggers=True, tokenize="porter", replace=True
    )


def _m3_triggers(db: sqlite_utils.Database) -> None:
    # One row per external recording ever claimed by `serve`/`poll`: the primary key is what
    # makes a redelivered webhook or a racing poll a no-op (INSERT OR IGNORE).
    db.executescript(
        """
        CREATE TABLE IF NOT EXISTS triggers (
            recording_id TEXT PRIMARY KEY,
            via TEXT NOT NULL,
            status TEXT NOT NULL,
            pid INTEGER,
            detail TEXT,
            attempts INTEGER NOT NULL DEFAULT 1,
            claimed_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        """
    )


def _m4_word_probability(db: sqlite_utils.Database) -> None:
    # Whisper's per-word probability (NULL for words stored before it was kept).
    if "probability" not in db["words"].columns_dict:
        db.execute("ALTER TABLE words ADD COLUMN probability REAL")


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _m1_core,
    _m2_search,
    _m3_triggers,
    _m4_word_probability,
]


def writable(path: Path) -> bool:
    """Whether the data dir (and the database in it, if any) can be written: permissions and
    a read-only mount (root passes every permission check, not the mount's)."""
    db = path / "reflector.sqlite3"
    try:
        ro_mount = bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False
    return not ro_mount and os.access(path, os.W_OK) and (not db.exists() or os.access(db, os.W_OK))


def check_data_dir(data_dir: Path, *, create: bool) -> None:
    """One line for a data dir that is a file, cannot be created, or is read-only."""
    if data_dir.exists() and not data_dir.is_dir():
        raise UserError(f"{data_dir}: is a file, not a data directory (check --data-dir)")
    if not create:
        return
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{data_dir}: cannot create the data directory ({exc.strerror})") from None
    if not writable(data_dir):
        raise UserError(f"{data_dir}: the data directory is read-only")


def schema_version(path: Path) -> int:
    """The migrations applied to the database at `path` (its user_version), read without
    migrating; sqlite3.Error when it is not a readable database."""
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def connect_readonly(path: Path) -> sqlite_utils.Database:
    """Open an existing database without writing a byte (a read-only dir or mount): `mode=ro`
    sees a live WAL; when SQLite cannot even create its shared-memory file, `immutable=1`."""
    uri = path.resolve().as_uri()
    for flags in ("mode=ro", "mode=ro&immutable=1"):
        conn = sqlite3.connect(
            f"{uri}?{flags}", uri=True, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError:
            conn.close()
            continue
        return sqlite_utils.Database(conn)
    raise UserError(f"{path}: cannot open the database read-only")


def connect(path: Path) -> sqlite_utils.Database:
    """Open (creating and migrating if needed) the database at `path`."""
    check_data_dir(path.parent, create=True)
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    db = sqlite_utils.Database(conn)
    db.execute("PRAGMA busy_timeout=30000")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA foreign_keys=ON")
    migrate(db, path)
    return db


def _set_up(db: sqlite_utils.Database) -> bool:
    return db.execute("PRAGMA journal_mode").fetchone()[0] == "wal" and db.execute(
        "PRAGMA user_version"
    ).fetchone()[0] >= len(MIGRATIONS)


def migrate(db: sqlite_utils.Database, path: Path) -> None:
    """Switch to WAL and apply pending migrations under a file lock; steps are idempotent, so
    a kill mid-way just re-runs the unfinished step next time. The switch to WAL needs the
    lock too: SQLite reports "database is locked" at once, without waiting, to a connection
    that switches while another one sets up the same new file (several runs started at once
    on a fresh data dir)."""
    if _set_up(db):
        return
    with open(path.with_name(path.name + ".migrate.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        db.execute("PRAGMA journal_mode=WAL")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
            step(db)
            db.execute(f"PRAGMA user_version = {number}")
