"""The LLM backend interface the stages call, and the request/response shapes it speaks.

Stages build the requests (chunking, names, word ranges); a backend only turns text into
titles and summaries, so a networked backend can slot in without any stage changing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

from pydantic import BaseModel, ConfigDict

from reflector_cli.core.models import ActionItems

ProgressFn = Callable[[int, int], None]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Utterance(_Frozen):
    """One sentence (or pause-delimited phrase) by one speaker."""

    speaker: int
    name: str
    start: float
    end: float
    text: str
    word_start: int
    word_end: int


class TopicChunk(_Frozen):
    """A contiguous run of transcript words, `word_end` exclusive, split into utterances."""

    index: int
    word_start: int
    word_end: int
    start: float
    end: float
    utterances: list[Utterance]

    @property
    def text(self) -> str:
        """The chunk as a speaker-labelled script, the form an LLM prompt would quote."""
        return "\n".join(f"{u.name}: {u.text}" for u in self.utterances)


class TopicText(_Frozen):
    title: str
    summary: str


class TitleRequest(_Frozen):
    topics: list[TopicText]
    participants: list[str]


class SummaryRequest(_Frozen):
    """The whole meeting, already cut into the chunks the topics were built from."""

    chunks: list[TopicChunk]
    topics: list[TopicText]
    participants: list[str]


class SummaryText(_Frozen):
    short: str
    long_markdown: str
    action_items: ActionItems = ActionItems()


class Backend(ABC):
    """What every backend implements. Errors: UserError for bad config, others are retried."""

    name: str = "abstract"

    @abstractmethod
    def topic(self, chunk: TopicChunk, chunks: Sequence[TopicChunk]) -> TopicText:
        """Title and ≤ 2-sentence summary of `chunk`; `chunks` is the whole meeting for context."""

    def topics(
        self, chunks: Sequence[TopicChunk], progress: ProgressFn | None = None
    ) -> list[TopicText]:
        """All chunks, in order. Networked backends override this to run chunks concurrently."""
        out: list[TopicText] = []
        for chunk in chunks:
            out.append(self.topic(chunk, chunks))
            if progress is not None:
                progress(len(out), len(chunks))
        return out

    @abstractmethod
    def title(self, request: TitleRequest) -> str | None:
        """A specific meeting title of ≤ 10 words, or None when there is nothing to name."""

    @abstractmethod
    def summary(self, request: SummaryRequest) -> SummaryText:
        """Short recap, long markdown summary and action items."""
