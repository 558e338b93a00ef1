"""Our prompts for topics, titles, summaries and action items, and the answer shapes they ask for.

Every prompt names the participants and asks for one JSON object; the answer models validate it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator

from reflector_cli.llm.base import TopicChunk, TopicText
from reflector_cli.llm.extractive import is_generic_title

MAX_TITLE_WORDS = 10
MAX_SUBJECTS = 6
SENTENCE = re.compile(r"[^.!?]+(?:[.!?]+|$)")

SYSTEM = (
    "You write notes about recorded meetings. The transcript labels every line with the "
    "speaker's name. Refer to people by those names, never as 'Speaker N' unless that is the "
    "only label given. Be specific and factual: only state what was said. Always answer with "
    "exactly one JSON object and no other text."
)


class _Answer(BaseModel):
    # Models sometimes add harmless extra keys; ignoring them saves a re-ask.
    model_config = ConfigDict(extra="ignore")


def _words(text: str) -> int:
    return len(text.split())


def _sentences(text: str) -> int:
    return len([s for s in SENTENCE.findall(text) if s.strip()])


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


def participants_line(names: Sequence[str]) -> str:
    return "Participants: " + (", ".join(names) if names else "(unknown)")


def topic_prompt(chunk: TopicChunk, total: int, names: Sequence[str]) -> str:
    return (
        f"{participants_line(names)}\n"
        f"This is part {chunk.index + 1} of {total} of the meeting transcript:\n"
        f"<transcript>\n{chunk.text}\n</transcript>\n\n"
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


def notes_prompt(
    chunks: Sequence[TopicChunk], part: int, parts: int, names: Sequence[str]
) -> str:
    script = "\n".join(c.text for c in chunks)
    where = "the whole meeting" if parts == 1 else f"part {part + 1} of {parts} of the meeting"
    return (
        f"{participants_line(names)}\n"
        f"Transcript of {where}:\n<transcript>\n{script}\n</transcript>\n\n"
        f"1. List the distinct subjects discussed (at most {MAX_SUBJECTS}), each with a short "
        "bold-worthy heading and one paragraph on what was said, by whom, and the outcome.\n"
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
