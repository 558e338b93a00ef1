"""Search and speaker renames on a real SQLite store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reflector_cli.core import models as m
from reflector_cli.store.meetings import (
    HIT_CLOSE,
    HIT_OPEN,
    reapply_renames,
    recording_started_at,
    rename_speaker,
    search,
)
from reflector_cli.store.repo import Store

SCRIPT = [
    (0, "Good morning, shall we talk about the quarterly budget?"),
    (1, "Yes. Speaker 2 here: the cloud invoice doubled last month."),
    (0, "Then Speaker 2 should review the invoice with finance by Friday."),
]


def meeting(
    rid: str, script: list[tuple[int, str]], title: str
) -> tuple[m.PipelineInput, m.FinalDoc]:
    words, t = [], 0.0
    for speaker, line in script:
        for w in line.split():
            words.append(m.Word(text=w, start=round(t, 2), end=round(t + 0.3, 2), speaker=speaker))
            t += 0.4
        t += 1.0
    pipe = m.PipelineInput(recording_id=rid, transcript_id=f"t-{rid}", source_kind="folder",
                           source="/x", asr=m.AsrOptions(model="/m"))  # fmt: skip
    doc = m.FinalDoc(
        transcript_id=f"t-{rid}",
        recording_id=rid,
        title=title,
        short_summary="Alice and Speaker 2 discussed the invoice. Speaker 20 was absent.",
        long_summary="# Quick recap\n\nSpeaker 2 reviews the invoice.",
        action_items=m.ActionItems(
            next_steps=[m.NextStep(task="Review invoice (Speaker 2)", assigned_to="Speaker 2")]
        ),
        duration_s=t,
        language="en",
        participants=[
            m.Participant(speaker=0, participant_id="a", name="Alice", track_key="k0"),
            m.Participant(speaker=1, participant_id="b", name="Speaker 2", track_key="k1"),
        ],
        topics=[
            m.Topic(
                title="Budget with Speaker 2",
                summary="Speaker 2 owns it.",
                start=0,
                duration=t,
                word_start=0,
                word_end=len(words),
            )
        ],  # fmt: skip
        words=words,
        waveform=[],
        audio_key=None,
        started_at_ms=1_732_870_800_000,
    )
    return pipe, doc


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "db.sqlite3")
    for rid, script, title in [
        ("rec-a", SCRIPT, "Budget Review"),
        ("rec-b", [(0, "We planned the offsite and the hiking trip.")], "Offsite"),
    ]:
        pipe, doc = meeting(rid, script, title)
        s.ensure_recording(pipe)
        s.commit_final(doc, "r-1")
    return s


def test_search_places_the_hit_at_speaker_and_time(store: Store) -> None:
    hits = search(store, "cloud invoices")  # porter stemming: "invoices" finds "invoice"
    assert [h["id"] for h in hits] == ["t-rec-a"]
    hit = hits[0]
    assert hit["speaker"] == 1 and hit["name"] == "Speaker 2"
    assert hit["start"] == pytest.approx(6.6)  # "cloud": 9 words + 1 s pause + 5 words in
    assert f"{HIT_OPEN}cloud{HIT_CLOSE}" in hit["snippet"]
    assert recording_started_at(store, "rec-a") == 1_732_870_800_000
    assert [h["id"] for h in search(store, "hiking")] == ["t-rec-b"]
    assert search(store, "hiking budget") == []  # every word must be in the same meeting
    assert search(store, '" OR NEAR(') == []  # FTS syntax is quoted, never an SQL error


def test_rename_updates_participant_and_whole_word_mentions(store: Store) -> None:
    res = rename_speaker(store, "t-rec-a", 1, "Bob Chen")
    # short summary 1, long 1, topic title 1 + summary 1, action item task 1 + owner 1
    assert res == {"speaker": 1, "old": "Speaker 2", "new": "Bob Chen", "mentions": 6}
    t = store.transcript("t-rec-a")
    assert t is not None
    assert t["short_summary"] == "Alice and Bob Chen discussed the invoice. Speaker 20 was absent."
    assert json.loads(t["action_items"])["next_steps"][0]["assigned_to"] == "Bob Chen"
    assert [p["name"] for p in store.participants("t-rec-a")] == ["Alice", "Bob Chen"]
    assert store.topics("t-rec-a")[0]["title"] == "Budget with Bob Chen"
    # The transcript's own words are what was said: untouched.
    assert "Speaker 2 here" in t["text"]
    again = rename_speaker(store, "t-rec-a", 1, "Bob Chen")
    assert again["mentions"] == 0


def test_rename_of_a_missing_speaker_changes_nothing(store: Store) -> None:
    with pytest.raises(LookupError):
        rename_speaker(store, "t-rec-a", 7, "X")
    assert [p["name"] for p in store.participants("t-rec-a")] == ["Alice", "Speaker 2"]


def test_a_locked_title_is_the_users_and_is_not_rewritten(store: Store) -> None:
    store.conn.execute("UPDATE transcripts SET title = 'Speaker 2 sync', title_locked = 1")
    rename_speaker(store, "t-rec-a", 1, "Bob")
    t = store.transcript("t-rec-a")
    assert t is not None and t["title"] == "Speaker 2 sync"
    assert "Bob discussed" in t["short_summary"]


def test_renames_survive_a_later_run_rewriting_the_transcript(store: Store) -> None:
    rename_speaker(store, "t-rec-a", 1, "Bob")
    rename_speaker(store, "t-rec-a", 1, "Bob Chen")
    rename_speaker(store, "t-rec-a", 0, "Alice Moreno")
    _, doc = meeting("rec-a", SCRIPT, "Budget Review")
    store.commit_final(doc, "r-2")  # a re-run writes the names from the source again
    assert [p["name"] for p in store.participants("t-rec-a")] == ["Alice", "Speaker 2"]
    assert reapply_renames(store, "t-rec-a") == 3
    assert [p["name"] for p in store.participants("t-rec-a")] == ["Alice Moreno", "Bob Chen"]
    t = store.transcript("t-rec-a")
    assert t is not None and "Alice Moreno and Bob Chen discussed" in t["short_summary"]
    # The source now names speaker 1 itself: that name wins over the old rename.
    robert = doc.participants[1].model_copy(update={"name": "Robert"})
    store.commit_final(
        doc.model_copy(update={"participants": [doc.participants[0], robert]}), "r-3"
    )
    assert reapply_renames(store, "t-rec-a") == 1
    assert [p["name"] for p in store.participants("t-rec-a")] == ["Alice Moreno", "Robert"]
