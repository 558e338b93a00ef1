"""Chunking and the extractive backend on a hand-written meeting and synthetic word streams."""

from __future__ import annotations

import re

import pytest

from reflector_cli.core.config import load_settings
from reflector_cli.core.errors import ConfigError
from reflector_cli.core.models import LlmOptions, Word
from reflector_cli.llm import get_backend
from reflector_cli.llm.actions import action_items
from reflector_cli.llm.base import SummaryRequest, TitleRequest, TopicText, Utterance
from reflector_cli.llm.chunking import build_chunks, chunk_ranges, is_sentence_end, utterances
from reflector_cli.llm.extractive import ExtractiveBackend
from reflector_cli.llm.text import is_generic_title
from tests.llm.meeting import NAMES, build_words

NAME_MAP = dict(enumerate(NAMES))


def stream(n: int, sentence_every: int = 0, pause_before: int = -1) -> list[Word]:
    """`n` words, 0.3 s apart, a full stop every `sentence_every` words, a 2.5 s gap at one spot."""
    words, t = [], 0.0
    for i in range(n):
        if i == pause_before:
            t += 2.5
        end = sentence_every and (i + 1) % sentence_every == 0
        words.append(Word(text=f"w{i}." if end else f"w{i}", start=t, end=t + 0.25, speaker=0))
        t += 0.3
    return words


def assert_contiguous(ranges: list[tuple[int, int]], n: int) -> None:
    assert ranges[0][0] == 0 and ranges[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
    assert all(e > s for s, e in ranges)


def test_chunks_are_about_300_words_and_cut_at_sentence_ends() -> None:
    words = stream(1000, sentence_every=17)
    ranges = chunk_ranges(words)
    assert_contiguous(ranges, 1000)
    assert all(210 <= e - s <= 390 for s, e in ranges)
    assert all(is_sentence_end(words[e - 1]) for s, e in ranges[:-1])


def test_a_long_pause_beats_a_sentence_end_nearer_the_target() -> None:
    words = stream(700, sentence_every=10, pause_before=335)
    assert chunk_ranges(words)[0] == (0, 335)


def test_tiny_tail_merges_into_previous_chunk() -> None:
    assert chunk_ranges(stream(395)) == [(0, 395)]
    split = chunk_ranges(stream(420))
    assert split == [(0, 300), (300, 420)]


def test_meeting_chunks_fall_on_the_subject_breaks() -> None:
    words = build_words()
    ranges = chunk_ranges(words)
    assert_contiguous(ranges, len(words))
    assert len(ranges) == 3
    # Each cut sits on one of the two 3-second lulls between subjects.
    for _, e in ranges[:-1]:
        assert words[e].start - words[e - 1].end >= 2.0


def test_utterances_split_on_speaker_change_and_keep_word_ranges() -> None:
    words = build_words()
    utts = utterances(words, NAME_MAP)
    assert utts[0].name == "Alice Moreno" and utts[0].text == "Okay, thanks everyone for joining."
    assert [u.word_start for u in utts[1:]] == [u.word_end for u in utts[:-1]]
    assert utts[-1].word_end == len(words)
    assert all(len({w.speaker for w in words[u.word_start : u.word_end]}) == 1 for u in utts)
    assert {u.name for u in utterances(words, {0: "Alice"})} >= {"Alice", "Speaker 2"}


def topics_for_meeting() -> list[TopicText]:
    words = build_words()
    chunks = build_chunks(words, NAME_MAP, chunk_ranges(words))
    return ExtractiveBackend().topics(chunks)


def test_topic_titles_name_each_subject_and_summaries_are_short() -> None:
    topics = topics_for_meeting()
    assert len(topics) == 3
    for topic, subject in zip(
        topics, ("crash", "onboarding|permission", "pricing|billing"), strict=True
    ):
        assert re.search(subject, topic.title, re.I), topic.title
        assert all(w[0].isupper() for w in topic.title.split() if w != "and"), topic.title
        assert 1 <= len(re.findall(r"[.!?](?:\s|$)", topic.summary)) <= 2
        assert re.match(r"(Alice Moreno|Bob Chen|Carol Diaz): ", topic.summary)


def test_recap_subjects_and_topics_quote_distinct_sentences() -> None:
    words = build_words()
    chunks = build_chunks(words, NAME_MAP, chunk_ranges(words))
    topics = ExtractiveBackend().topics(chunks)
    text = ExtractiveBackend().summary(
        SummaryRequest(chunks=chunks, topics=topics, participants=NAMES)
    )
    _, _, body = text.long_markdown.partition("\n# Summary\n")
    subject_paragraphs = [b for b in body.split("\n\n") if b.strip() and not b.startswith("**")]
    views = {
        "recap": split_sentences(text.short),
        "subjects": [s for b in subject_paragraphs for s in split_sentences(b)],
        "topics": [s for t in topics for s in split_sentences(t.summary)],
    }
    assert all(views.values()), views
    everything = [s for v in views.values() for s in v]
    assert len(everything) == len(set(everything)), views


def split_sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


def test_meeting_title_is_specific_and_short() -> None:
    topics = topics_for_meeting()
    title = ExtractiveBackend().title(TitleRequest(topics=topics, participants=NAMES))
    assert title is not None
    assert len(title.split()) <= 10
    assert not is_generic_title(title)
    assert re.search(r"crash|permission|onboarding|pricing", title, re.I)


def test_generic_topic_titles_never_become_the_meeting_title() -> None:
    generic = [TopicText(title="Team Meeting", summary="x."), TopicText(title="Sync", summary="y.")]
    title = ExtractiveBackend().title(TitleRequest(topics=generic, participants=["Ann", "Raj"]))
    assert title == "Conversation Between Ann and Raj"
    assert ExtractiveBackend().title(TitleRequest(topics=[], participants=["Ann"])) is None
    for bad in ("Team Meeting", "Meeting", "Discussion", "Untitled", "", "the weekly sync"):
        assert is_generic_title(bad)
    assert not is_generic_title("Pricing Page Discussion")


def utt(name: str, text: str, speaker: int = 0) -> Utterance:
    return Utterance(
        speaker=speaker, name=name, start=0.0, end=1.0, text=text, word_start=0, word_end=1
    )


def test_action_items_find_owners_deadlines_and_decisions() -> None:
    people = ["Ann Lee", "Raj Patel"]
    items = action_items(
        [
            utt("Ann Lee", "Let's start with the budget."),
            utt("Ann Lee", "So we decided to keep the vendor."),
            utt("Raj Patel", "I'll send the invoice by next Tuesday."),
            utt("Ann Lee", "Raj, can you book the venue?"),
            utt("Raj Patel", "What time is it?"),
            utt("Ann Lee", "The weather was nice."),
        ],
        people,
    )
    assert [d.model_dump() for d in items.decisions] == [
        {"decision": "We decided to keep the vendor.", "decided_by": "Ann Lee"}
    ]
    assert [s.model_dump() for s in items.next_steps] == [
        {
            "task": "Send the invoice by next Tuesday",
            "assigned_to": "Raj Patel",
            "deadline": "next Tuesday",
        },
        {"task": "Book the venue", "assigned_to": "Raj Patel", "deadline": None},
    ]


def test_get_backend_registry() -> None:
    settings = load_settings()
    assert isinstance(get_backend(LlmOptions(), settings), ExtractiveBackend)
    for name in ("anthropic", "openai"):
        with pytest.raises(ConfigError, match="needs (ANTHROPIC_API_KEY|LLM_URL)"):
            get_backend(LlmOptions(backend=name), settings)
    with pytest.raises(ConfigError, match="unknown LLM backend 'gpt9'"):
        get_backend(LlmOptions(backend="gpt9"), settings)
