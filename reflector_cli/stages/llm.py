"""detect_topics, generate_title, generate_summary: chunk the transcript and ask the backend.

Chunking and word ranges live here (shared by every backend); the backend only writes text.
"""

from __future__ import annotations

from reflector_cli.core.models import (
    ParticipantsOut,
    SummaryIn,
    SummaryOut,
    TitleIn,
    TitleOut,
    Topic,
    TopicsIn,
    TopicsOut,
    TranscriptDoc,
    Word,
)
from reflector_cli.llm import get_backend
from reflector_cli.llm.base import SummaryRequest, TitleRequest, TopicText
from reflector_cli.llm.chunking import build_chunks, chunk_ranges
from reflector_cli.stages.context import StageContext

NO_SPEECH = "No speech was detected."


def _names(participants: ParticipantsOut) -> dict[int, str]:
    return {p.speaker: p.name for p in participants.participants if p.name}


def _load_words(ctx: StageContext, key: str) -> list[Word]:
    return TranscriptDoc.model_validate_json(ctx.storage.read_bytes(key)).words


def detect_topics(inp: TopicsIn, ctx: StageContext) -> TopicsOut:
    words = _load_words(ctx, inp.merge.transcript_key)
    if not words:
        return TopicsOut(topics=[])
    chunks = build_chunks(words, _names(inp.participants), chunk_ranges(words))
    backend = get_backend(inp.llm, ctx.settings, ctx)
    ctx.progress(0, len(chunks))
    texts = backend.topics(chunks, progress=lambda done, total: ctx.progress(done, total))
    topics = [
        Topic(
            title=text.title,
            summary=text.summary,
            start=round(chunk.start, 3),
            duration=round(chunk.end - chunk.start, 3),
            word_start=chunk.word_start,
            word_end=chunk.word_end,
        )
        for chunk, text in zip(chunks, texts, strict=True)
    ]
    for topic in topics:
        ctx.emit("TOPIC", **topic.model_dump())
    return TopicsOut(topics=topics)


def generate_title(inp: TitleIn, ctx: StageContext) -> TitleOut:
    if not inp.topics.topics:
        return TitleOut(title=None)
    request = TitleRequest(
        topics=[TopicText(title=t.title, summary=t.summary) for t in inp.topics.topics],
        participants=[p.name for p in inp.participants.participants],
    )
    title = get_backend(inp.llm, ctx.settings, ctx).title(request)
    if title:
        ctx.emit("FINAL_TITLE", title=title)
    return TitleOut(title=title or None)


def generate_summary(inp: SummaryIn, ctx: StageContext) -> SummaryOut:
    words = _load_words(ctx, inp.merge.transcript_key)
    names = _names(inp.participants)
    if not words:
        out = SummaryOut(short_summary=NO_SPEECH, long_summary=f"# Quick recap\n\n{NO_SPEECH}\n")
        _emit_summary(ctx, out)
        return out
    topics = inp.topics.topics
    # Summaries follow the topics' own word ranges, so subjects line up with the topic list.
    ranges = [(t.word_start, t.word_end) for t in topics] if topics else chunk_ranges(words)
    chunks = build_chunks(words, names, ranges)
    request = SummaryRequest(
        chunks=chunks,
        topics=[TopicText(title=t.title, summary=t.summary) for t in topics],
        participants=[p.name for p in inp.participants.participants],
    )
    text = get_backend(inp.llm, ctx.settings, ctx).summary(request)
    out = SummaryOut(
        short_summary=text.short, long_summary=text.long_markdown, action_items=text.action_items
    )
    _emit_summary(ctx, out)
    return out


def _emit_summary(ctx: StageContext, out: SummaryOut) -> None:
    ctx.emit("FINAL_SHORT_SUMMARY", summary=out.short_summary)
    ctx.emit("FINAL_LONG_SUMMARY", summary=out.long_summary)
    ctx.emit("ACTION_ITEMS", **out.action_items.model_dump())
