"""compare_runs on real stored runs (two local runs of a short synthetic meeting), then on a
copy of the database with one stage's stored output perturbed."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.console import Console

from reflector_cli.core.config import Settings, load_settings
from reflector_cli.core.errors import UserError
from reflector_cli.pipeline.versioning import canonical_json, sha256_text
from reflector_cli.runs.compare import (
    compare_runs,
    field_diff,
    render_table,
    store_comparison,
)
from reflector_cli.runs.process import process_recording, run_compare
from reflector_cli.store.repo import Store

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Runs:
    settings: Settings
    source: Path
    primary: str
    shadow: str


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """A 15 s two-speaker meeting processed twice on the local provider: primary, then shadow."""
    base = tmp_path_factory.mktemp("compare")
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_fixture.py"), "--out", str(base / "fx")]
        + ["--minutes", "0.25", "--speakers", "2"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    source = base / "fx" / "meeting"
    settings = load_settings(data_dir=base / "data", workers=1, retry_backoff_s=0.0)
    a = process_recording(str(source), settings, provider="local", force=True, deliver=False)
    b = process_recording(
        str(source), settings, provider="local", force=True, deliver=False, role="shadow"
    )
    assert a.ok and b.ok and a.run_id and b.run_id
    return Runs(settings, source, a.run_id, b.run_id)


@pytest.fixture
def db_copy(runs: Runs, tmp_path: Path) -> Store:
    """A copy of the database (WAL included, via the backup API) that a test may edit."""
    dst = tmp_path / "copy.sqlite3"
    src = sqlite3.connect(runs.settings.db_path)
    out = sqlite3.connect(dst)
    src.backup(out)
    src.close()
    out.close()
    return Store(dst)


def _set_output(store: Store, run_id: str, stage: str, track: int, edit: dict) -> None:
    row = store._one(
        "SELECT output FROM stage_runs WHERE run_id = ? AND stage = ? AND track = ?",
        (run_id, stage, track),
    )
    assert row is not None
    text = canonical_json({**json.loads(row["output"]), **edit})
    store.conn.execute(
        "UPDATE stage_runs SET output = ?, output_hash = ? WHERE run_id = ? AND stage = ?"
        " AND track = ?",
        (text, sha256_text(text)[:32], run_id, stage, track),
    )


def test_identical_runs_agree(runs: Runs) -> None:
    store = Store(runs.settings.db_path)
    try:
        report = compare_runs(store, {"local": runs.primary, "shadow": runs.shadow})
        assert report.agree, report.diff
        assert report.first_difference is None and report.diff == []
        assert len(report.stages) == 16  # 12 single stages + 2 per-track stages x 2 tracks
        assert all(s.equal for s in report.stages)
        assert report.transcript.wer == {"local": 0.0, "shadow": 0.0}
        assert report.transcript.speakers == {"local": [0, 1], "shadow": [0, 1]}
        assert report.transcript.words["local"] > 10
        assert report.overhead_vs_local["local"] == 1.0
        assert report.overhead_vs_local["shadow"] is not None
        # The shadow run recorded everything but did not replace the committed transcript.
        t = store.find_transcript(runs.primary)
        assert t is not None and t["run_id"] == runs.primary
        assert (store.run(runs.shadow) or {})["role"] == "shadow"
    finally:
        store.close()


def test_perturbed_stage_output_disagrees_and_names_the_stage(db_copy: Store) -> None:
    rows = db_copy._all("SELECT id, role FROM runs ORDER BY created_at")
    primary, shadow = rows[0]["id"], rows[1]["id"]
    _set_output(db_copy, shadow, "generate_title", -1, {"title": "Something Else"})
    report = compare_runs(db_copy, {"local": primary, "shadow": shadow})
    assert not report.agree
    assert report.first_difference == "generate_title"
    assert len(report.diff) == 1
    assert report.diff[0].startswith("title: ") and '"Something Else"' in report.diff[0]
    assert [s.label for s in report.stages if not s.equal] == ["generate_title"]
    store_comparison(db_copy, report)
    stored = db_copy.comparisons()
    assert (stored[0]["id"], stored[0]["agree"]) == (report.id, 0)
    console = Console(record=True, width=200)
    console.print(render_table(report))
    text = console.export_text()
    assert "disagree at generate_title" in text and "differs" in text


def test_first_difference_follows_dag_order_and_tracks(db_copy: Store) -> None:
    rows = db_copy._all("SELECT id FROM runs ORDER BY created_at")
    primary, shadow = rows[0]["id"], rows[1]["id"]
    _set_output(db_copy, shadow, "detect_topics", -1, {"topics": []})
    _set_output(db_copy, shadow, "transcribe_track", 1, {"word_count": 999})
    report = compare_runs(db_copy, {"local": primary, "shadow": shadow})
    assert report.first_difference == "transcribe_track[1]"
    assert any(line.startswith("word_count: ") and "999" in line for line in report.diff)
    assert {s.label for s in report.stages if not s.equal} == {
        "transcribe_track[1]",
        "detect_topics",
    }


def test_status_difference_and_transcript_wer(db_copy: Store) -> None:
    rows = db_copy._all("SELECT id FROM runs ORDER BY created_at")
    primary, shadow = rows[0]["id"], rows[1]["id"]
    event = db_copy._one(
        "SELECT id, data FROM events WHERE run_id = ? AND type = 'TRANSCRIPT'", (shadow,)
    )
    assert event is not None
    words = json.loads(event["data"])["text"].split()
    db_copy.conn.execute(
        "UPDATE events SET data = ? WHERE id = ?",
        (json.dumps({"text": " ".join(words[1:])}), event["id"]),
    )
    only_words = compare_runs(db_copy, {"local": primary, "shadow": shadow})
    assert only_words.first_difference is None and not only_words.agree
    assert only_words.transcript.wer["shadow"] == round(1 / len(words), 4)
    assert only_words.diff[0].startswith("transcript: WER")

    db_copy.conn.execute(
        "UPDATE stage_runs SET status = 'failed' WHERE run_id = ? AND stage = 'post_zulip'",
        (shadow,),
    )
    report = compare_runs(db_copy, {"local": primary, "shadow": shadow})
    assert report.first_difference == "post_zulip"
    assert report.diff == ["status: local done != shadow failed"]


def test_field_diff_is_short() -> None:
    a = json.dumps({"peaks": list(range(20)), "n": 1})
    b = json.dumps({"peaks": [x + 1 for x in range(20)], "n": 1})
    lines = field_diff(a, b)
    assert lines[:2] == ["peaks[0]: 0 != 1", "peaks[10]: 10 != 11"]
    assert lines[-1] == "… 14 more" and len(lines) == 7
    assert field_diff(a, a) == []


def test_bad_comparisons_are_user_errors(runs: Runs) -> None:
    store = Store(runs.settings.db_path)
    try:
        with pytest.raises(UserError, match="at least two"):
            compare_runs(store, {"local": runs.primary})
        with pytest.raises(UserError, match="r-missing: no such run"):
            compare_runs(store, {"local": runs.primary, "celery": "r-missing"})
    finally:
        store.close()
    with pytest.raises(UserError, match="at least two"):
        run_compare(str(runs.source), ["local", "local"], runs.settings, reuse=True)
