"""Our prompts for topics, titles, summaries and action items, the answer shapes they ask for,
how much transcript fits in one prompt, and how answers become our models.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator

from reflector_cli.core.models import ActionItems, Decision, NextStep
from reflector_cli.llm.base import TopicChunk, TopicText, Utterance
from reflector_cli.llm.text import is_generic_title

MAX_TITLE_WORDS = 10
MAX_SUBJECTS = 6
# A sentence ends at . ! ? followed by a capitalised word or the end ("2.5" is not an end).
SENTENCE_END = re.compile(r"[.!?]+(?=\s+[A-Z\"'(]|\s*$)")
CHARS_PER_TOKEN = 3.5  # English is ~4; rounding down keeps the estimate on the safe side

SYSTEM = (
    "You write notes about recorded meetings. The transcript labels every line with the "
    "speaker's name. Refer to people by those names, never as 'Speaker N' unless that is the "
    "only label given. Be specific and factual: only state what was said. Always answer with "
    "exactly one JSON object and no other text."
)


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


class _Answer(BaseModel):
    # Models sometimes add harmless extra keys; ignoring them saves a re-ask.
    model_config = ConfigDict(extra="ignore")


def _words(text: str) -> int:
    return len(text.split())


def _sentences(text: str) -> int:
    text = text.strip()
    ends = len(SENTENCE_END.findall(text))
    # A final sentence without a full stop still counts.
    return ends + (0 if not text or text[-1] in ".!?" else 1)


class TopicAnswer(_Answer):
    title: str = Field(min_length=1)
    summary: str = Field(min_length=1)

    @field_validator("title")
    @classmethod
    def _short_title(cls, v: str) -> str:
        v = v.strip().strip("\"'").rstrip(".")
        if not v or _words(v) > 12:
            raise ValueError("title must be 1 to 12 words")
        return v

    @field_validator("summary")
    @classmethod
    def _two_sentences(cls, v: str) -> str:
        v = v.strip()
        if _sentences(v) > 2:
            raise ValueError("summary must be at most 2 sentences")
        return v


class TitleAnswer(_Answer):
    title: str

    @field_validator("title")
    @classmethod
    def _specific(cls, v: str) -> str:
        v = " ".join(v.strip().strip("\"'").rstrip(".").split())
        if not v:
            raise ValueError("title must not be empty")
        if _words(v) > MAX_TITLE_WORDS:
            raise ValueError(f"title must be at most {MAX_TITLE_WORDS} words")
        if is_generic_title(v):
            raise ValueError("title is too generic; name what the meeting was about")
        return v


class SubjectAnswer(_Answer):
    subject: str = Field(min_length=1)
    paragraph: str = Field(min_length=1)


class DecisionAnswer(_Answer):
    decision: str = Field(min_length=1)
    decided_by: str | None = None


class NextStepAnswer(_Answer):
    task: str = Field(min_length=1)
    assigned_to: str | None = None
    deadline: str | None = None


class NotesAnswer(_Answer):
    """Everything one stretch of transcript yields: subjects, recap, decisions, next steps."""

    subjects: list[SubjectAnswer] = Field(min_length=1, max_length=MAX_SUBJECTS)
    recap: str = Field(min_length=1)
    decisions: list[DecisionAnswer] = []
    next_steps: list[NextStepAnswer] = []


class MergedAnswer(_Answer):
    """The notes of several stretches folded into one meeting-wide summary."""

    subjects: list[SubjectAnswer] = Field(min_length=1, max_length=MAX_SUBJECTS)
    recap: str = Field(min_length=1)


def script(utterances: Sequence[Utterance]) -> str:
    """Speaker-labelled lines, consecutive sentences of one speaker on one line (fewer tokens)."""
    lines: list[tuple[str, list[str]]] = []
    for u in utterances:
        if lines and lines[-1][0] == u.name:
            lines[-1][1].append(u.text)
        else:
            lines.append((u.name, [u.text]))
    return "\n".join(f"{name}: {' '.join(texts)}" for name, texts in lines)


def participants_line(names: Sequence[str]) -> str:
    return "Participants: " + (", ".join(names) if names else "(unknown)")


def topic_prompt(chunk: TopicChunk, total: int, names: Sequence[str]) -> str:
    return (
        f"{participants_line(names)}\n"
        f"This is part {chunk.index + 1} of {total} of the meeting transcript:\n"
        f"<transcript>\n{script(chunk.utterances)}\n</transcript>\n\n"
        "Give this part a short specific topic title (at most 8 words) and a summary of at "
        "most 2 sentences saying who said or decided what.\n"
        'Answer as JSON: {"title": "...", "summary": "..."}'
    )


def title_prompt(topics: Sequence[TopicText], names: Sequence[str]) -> str:
    listing = "\n".join(f"- {t.title}: {t.summary}" for t in topics)
    return (
        f"{participants_line(names)}\n"
        f"The meeting covered these topics, in order:\n{listing}\n\n"
        f"Write one title for the whole meeting, at most {MAX_TITLE_WORDS} words, naming its "
        "main subjects. Generic titles such as 'Team Meeting' or 'Weekly Sync' are not "
        "acceptable.\n"
        'Answer as JSON: {"title": "..."}'
    )


def notes_prompt(chunks: Sequence[TopicChunk], part: int, parts: int, names: Sequence[str]) -> str:
    text = script([u for c in chunks for u in c.utterances])
    where = "the whole meeting" if parts == 1 else f"part {part + 1} of {parts} of the meeting"
    return (
        f"{participants_line(names)}\n"
        f"Transcript of {where}:\n<transcript>\n{text}\n</transcript>\n\n"
        f"1. List the distinct subjects discussed (at most {MAX_SUBJECTS}), each with a short "
        "heading and one paragraph on what was said, by whom, and the outcome.\n"
        "2. Write a one-paragraph recap of this transcript.\n"
        "3. List the decisions taken (with who decided, if clear) and the next steps, each with "
        "the participant it was assigned to (use their exact name from the participant list) "
        "and a deadline only if one was said.\n"
        'Answer as JSON: {"subjects": [{"subject": "...", "paragraph": "..."}], '
        '"recap": "...", "decisions": [{"decision": "...", "decided_by": "name or null"}], '
        '"next_steps": [{"task": "...", "assigned_to": "name or null", '
        '"deadline": "text or null"}]}'
    )


def merge_prompt(notes: Sequence[NotesAnswer], names: Sequence[str]) -> str:
    blocks = []
    for i, n in enumerate(notes, 1):
        subjects = "\n".join(f"  - {s.subject}: {s.paragraph}" for s in n.subjects)
        blocks.append(f"Part {i} recap: {n.recap}\nPart {i} subjects:\n{subjects}")
    joined = "\n\n".join(blocks)
    return (
        f"{participants_line(names)}\n"
        f"A long meeting was summarised in {len(notes)} consecutive parts:\n\n{joined}\n\n"
        f"Merge them into at most {MAX_SUBJECTS} subjects for the whole meeting (combine "
        "subjects that continue across parts), each with one paragraph, and write a "
        "one-paragraph recap of the whole meeting.\n"
        'Answer as JSON: {"subjects": [{"subject": "...", "paragraph": "..."}], "recap": "..."}'
    )


def long_markdown(recap: str, subjects: Sequence[SubjectAnswer]) -> str:
    parts = ["# Quick recap", "", recap.strip(), "", "# Summary", ""]
    for s in subjects:
        parts += [f"**{s.subject.strip().strip('*')}**", "", s.paragraph.strip(), ""]
    return "\n".join(parts)


# --------------------------------------------------------------------------- context budget


def chunk_tokens(chunk: TopicChunk) -> int:
    return estimate_tokens(script(chunk.utterances)) + 2


def fit_chunk(chunk: TopicChunk, budget: int) -> TopicChunk:
    """`chunk`, minus trailing utterances if its text alone would not fit in `budget` tokens."""
    if chunk_tokens(chunk) <= budget:
        return chunk
    kept = list(chunk.utterances)
    while len(kept) > 1 and estimate_tokens(script(kept)) > budget:
        kept.pop()
    if estimate_tokens(f"{kept[0].name}: {kept[0].text}") > budget:
        # One endless sentence: cut its characters rather than overflow the context.
        u = kept[0]
        room = max(1, int(budget * CHARS_PER_TOKEN) - len(u.name) - 2)
        kept = [u.model_copy(update={"text": u.text[:room]})]
    return chunk.model_copy(update={"utterances": kept})


def pack_chunks(chunks: Sequence[TopicChunk], budget: int) -> list[list[TopicChunk]]:
    """Consecutive chunks grouped so that no group's estimated tokens exceed `budget`."""
    groups: list[list[TopicChunk]] = []
    used = 0
    for chunk in chunks:
        chunk = fit_chunk(chunk, budget)
        cost = chunk_tokens(chunk)
        if groups and used + cost <= budget:
            groups[-1].append(chunk)
            used += cost
        else:
            groups.append([chunk])
            used = cost
    return groups


# --------------------------------------------------------------------------- answers -> models


def match_name(raw: str | None, names: Sequence[str]) -> str | None:
    """A participant's exact name for what the model wrote ("bob" -> "Bob Chen"), else as given."""
    if raw is None or not raw.strip() or raw.strip().lower() in {"null", "none", "unknown"}:
        return None
    text = raw.strip()
    low = text.lower()
    for name in names:
        if name.lower() == low:
            return name
    # A first name alone matches when exactly one participant has it.
    hits = [n for n in names if n.split() and n.split()[0].lower() == low.split()[0]]
    return hits[0] if len(hits) == 1 else text


def action_items_from(parts: Sequence[NotesAnswer], names: Sequence[str]) -> ActionItems:
    decisions: dict[str, Decision] = {}
    steps: dict[str, NextStep] = {}
    for part in parts:
        for d in part.decisions:
            decisions.setdefault(
                d.decision.strip().lower(),
                Decision(decision=d.decision.strip(), decided_by=match_name(d.decided_by, names)),
            )
        for s in part.next_steps:
            deadline = s.deadline.strip() if s.deadline and s.deadline.strip() else None
            if deadline and deadline.lower() in {"null", "none"}:
                deadline = None
            steps.setdefault(
                s.task.strip().lower(),
                NextStep(
                    task=s.task.strip(),
                    assigned_to=match_name(s.assigned_to, names),
                    deadline=deadline,
                ),
            )
    return ActionItems(decisions=list(decisions.values()), next_steps=list(steps.values()))
