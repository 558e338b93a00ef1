"""The LLM stages end to end with the extractive backend, on a hand-written 3-person meeting."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from reflector_cli.core.config import load_settings
from reflector_cli.core.errors import ConfigError
from reflector_cli.core.models import (
    LlmOptions,
    MergeOut,
    ParticipantsOut,
    SummaryIn,
    SummaryOut,
    TitleIn,
    TitleOut,
    TopicsIn,
    TopicsOut,
    TranscriptDoc,
)
from reflector_cli.stages.context import StageContext
from reflector_cli.stages.llm import detect_topics, generate_summary, generate_title
from reflector_cli.storage import LocalStorage
from tests.llm.meeting import NAMES, build_doc, participants

Events = list[tuple[str, dict[str, Any]]]


def make_ctx(root: Path) -> tuple[StageContext, Events]:
    events: Events = []
    ctx = StageContext(
        storage=LocalStorage(root),
        settings=load_settings(data_dir=root),
        emit_fn=lambda kind, data: events.append((kind, data)),
    )
    return ctx, events


def write_doc(ctx: StageContext, doc: TranscriptDoc) -> MergeOut:
    key = ctx.key("rec", "transcript.json")
    ctx.storage.write_bytes(key, doc.model_dump_json().encode())
    return MergeOut(
        transcript_key=key,
        word_count=len(doc.words),
        speakers=sorted({w.speaker for w in doc.words}),
        duration_s=max((w.end for w in doc.words), default=0.0),
    )


def run_all(
    root: Path,
    doc: TranscriptDoc,
    people: ParticipantsOut | None = None,
    backend: str = "extractive",
) -> tuple[TopicsOut, TitleOut, SummaryOut, Events]:
    ctx, events = make_ctx(root)
    merge = write_doc(ctx, doc)
    people = people or participants()
    llm = LlmOptions(backend=backend)
    topics = detect_topics(
        TopicsIn(recording_id="rec", llm=llm, merge=merge, participants=people), ctx
    )
    title = generate_title(
        TitleIn(recording_id="rec", llm=llm, topics=topics, participants=people), ctx
    )
    summary = generate_summary(
        SummaryIn(recording_id="rec", llm=llm, merge=merge, topics=topics, participants=people), ctx
    )
    return topics, title, summary, events


def test_topics_cover_every_word_in_order(tmp_path: Path) -> None:
    doc = build_doc()
    topics, _, _, events = run_all(tmp_path, doc)
    ts = topics.topics
    assert 2 <= len(ts) <= 4
    assert ts[0].word_start == 0 and ts[-1].word_end == len(doc.words)
    assert all(a.word_end == b.word_start for a, b in zip(ts, ts[1:], strict=False))
    for t in ts:
        first, last = doc.words[t.word_start], doc.words[t.word_end - 1]
        assert t.start == first.start
        assert t.duration == pytest.approx(last.end - first.start, abs=1e-3)
        assert t.title and t.summary
    assert [d for k, d in events if k == "TOPIC"] == [t.model_dump() for t in ts]
    progress = [(d["done"], d["total"]) for k, d in events if k == "PROGRESS"]
    assert progress[-1] == (len(ts), len(ts))


def test_title_and_summaries_read_like_this_meeting(tmp_path: Path) -> None:
    _, title, summary, events = run_all(tmp_path, build_doc())
    assert title.title and len(title.title.split()) <= 10
    assert title.title.lower() not in {"team meeting", "meeting", "discussion", "untitled"}
    assert ("FINAL_TITLE", {"title": title.title}) in events

    assert "\n" not in summary.short_summary
    assert all(name in summary.short_summary for name in NAMES)
    long = summary.long_summary
    assert long.startswith("# Quick recap\n\n")
    recap, _, body = long.partition("\n# Summary\n")
    assert summary.short_summary in recap
    subjects = re.findall(r"^\*\*(.+)\*\*$", body, re.M)
    assert 1 <= len(subjects) <= 6
    for text in (summary.short_summary, long, title.title):
        assert "Speaker" not in text

    steps = summary.action_items.next_steps
    assert {s.assigned_to for s in steps} <= set(NAMES)
    mockups = [s for s in steps if "mockups by Friday" in s.task]
    assert [(s.assigned_to, s.deadline) for s in mockups] == [("Carol Diaz", "Friday")]
    assert any(s.assigned_to == "Bob Chen" and s.deadline == "Thursday" for s in steps)
    assert any("March 14th" in d.decision for d in summary.action_items.decisions)
    kinds = [k for k, _ in events]
    for kind in ("FINAL_SHORT_SUMMARY", "FINAL_LONG_SUMMARY", "ACTION_ITEMS"):
        assert kinds.count(kind) == 1


def test_same_input_gives_byte_identical_output(tmp_path: Path) -> None:
    first = run_all(tmp_path / "a", build_doc())
    second = run_all(tmp_path / "b", build_doc())
    for x, y in zip(first[:3], second[:3], strict=True):
        assert x.model_dump_json() == y.model_dump_json()
    assert first[3] == second[3]


def test_unknown_names_fall_back_to_numbered_speakers(tmp_path: Path) -> None:
    people = ParticipantsOut(participants=participants().participants[:1])
    topics, _, summary, _ = run_all(tmp_path, build_doc(), people)
    text = " ".join(t.summary for t in topics.topics) + summary.long_summary
    assert "Alice Moreno" in text
    assert re.search(r"Speaker [23]", text)


def test_empty_transcript_is_not_an_error(tmp_path: Path) -> None:
    topics, title, summary, events = run_all(tmp_path, TranscriptDoc(words=[], segments=[]))
    assert topics.topics == [] and title.title is None
    assert summary.short_summary == "No speech was detected."
    assert summary.long_summary.startswith("# Quick recap")
    assert summary.action_items.next_steps == [] and summary.action_items.decisions == []
    assert "TOPIC" not in [k for k, _ in events]


def test_unavailable_backend_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="anthropic"):
        run_all(tmp_path, build_doc(), backend="anthropic")
