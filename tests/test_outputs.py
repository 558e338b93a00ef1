"""Files out: format lists, safe names, and collisions within one call."""

from __future__ import annotations

from pathlib import Path

import pytest

from reflector_cli.core.errors import UserError
from reflector_cli.store.repo import Store
from reflector_cli.views.outputs import (
    FORMATS,
    RenderContext,
    base_name,
    parse_formats,
    slug,
    write_outputs,
)
from tests.store.test_meetings import SCRIPT, meeting


def test_parse_formats() -> None:
    assert parse_formats("all") == list(FORMATS)
    assert parse_formats("md, SRT,md") == ["md", "srt"]
    for bad in ("docx", "", "md,,pdf", "all,md"):
        with pytest.raises(UserError, match="--format"):
            parse_formats(bad)


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Q3 Roadmap: Exports & Subtitles!", "q3-roadmap-exports-subtitles"),
        ("../../etc/passwd", "etc-passwd"),
        ("Café Müller — Überblick", "cafe-muller-uberblick"),
        ("会议", ""),
        ("a" * 300, "a" * 60),
    ],
)
def test_slug_is_safe(title: str, expected: str) -> None:
    assert slug(title) == expected


def test_base_name_falls_back_to_the_id_and_creation_date() -> None:
    row = {"id": "t-abc", "title": "会议", "created_at": "2026-01-02T03:04:05Z"}
    assert base_name(row, None) == "2026-01-02-t-abc"
    assert base_name(row | {"title": "Sync"}, 1_732_870_800_000) == "2024-11-29-sync"


def test_same_title_same_day_in_one_call_never_overwrites(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite3")
    for rid in ("rec-a", "rec-b"):
        pipe, doc = meeting(rid, SCRIPT, "Weekly Sync")
        store.ensure_recording(pipe)
        store.commit_final(doc, "r-1")
    taken: set[str] = set()
    ctx = RenderContext()
    a = write_outputs(store, "t-rec-a", ["txt", "tsv"], tmp_path / "out", ctx, taken)
    b = write_outputs(store, "t-rec-b", ["txt"], tmp_path / "out", ctx, taken)
    assert [p.name for p in a] == ["2024-11-29-weekly-sync.txt", "2024-11-29-weekly-sync.tsv"]
    assert [p.name for p in b] == ["2024-11-29-weekly-sync-t-rec-b.txt"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        p.name for p in [*a, *b]
    )  # no temporary files left behind
