"""The offline `extractive` backend: TF-IDF keyphrases and central sentences, numpy only.

No network and no model: titles come from the meeting's own keyphrases, summaries from its
own most central sentences, action items from commitment cues. Same input, same bytes out.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

from reflector_cli.llm.actions import action_items
from reflector_cli.llm.base import (
    Backend,
    ProgressFn,
    SummaryRequest,
    SummaryText,
    TitleRequest,
    TopicChunk,
    TopicText,
    Utterance,
)
from reflector_cli.llm.text import attributed, is_generic_title, join_names
from reflector_cli.llm.tfidf import Corpus

MAX_TITLE_WORDS = 10
MAX_SUBJECTS = 6


# --------------------------------------------------------------------------- the backend


class ExtractiveBackend(Backend):
    name = "extractive"

    def topic(self, chunk: TopicChunk, chunks: Sequence[TopicChunk]) -> TopicText:
        corpus = Corpus([c.utterances for c in chunks])
        d = next(i for i, c in enumerate(chunks) if c.index == chunk.index)
        return self._topic(corpus, d, chunk)

    def topics(
        self, chunks: Sequence[TopicChunk], progress: ProgressFn | None = None
    ) -> list[TopicText]:
        # One corpus for the whole meeting instead of one per chunk: same result, less work.
        corpus = Corpus([c.utterances for c in chunks])
        out = []
        for d, chunk in enumerate(chunks):
            out.append(self._topic(corpus, d, chunk))
            if progress is not None:
                progress(d + 1, len(chunks))
        return out

    def _topic(self, corpus: Corpus, d: int, chunk: TopicChunk) -> TopicText:
        phrases = corpus.keyphrases(d, 2)
        names = list(dict.fromkeys(u.name for u in chunk.utterances))
        title = " and ".join(phrases) if phrases else f"Remarks from {join_names(names)}"
        picks = corpus.central(chunk.utterances, corpus.weights[d], 2)
        summary = " ".join(attributed(chunk.utterances[i]) for i in picks)
        return TopicText(title=title, summary=summary)

    def title(self, request: TitleRequest) -> str | None:
        if not request.topics:
            return None
        scores: Counter[str] = Counter()
        display: dict[str, str] = {}
        summaries = " ".join(t.summary.lower() for t in request.topics)
        for t in request.topics:
            for rank, phrase in enumerate(re.split(r"\s+and\s+|,\s*", t.title)):
                key = phrase.lower().strip()
                if not key or is_generic_title(phrase):
                    continue
                display.setdefault(key, phrase.strip())
                # Strong in its own topic (rank), recurring across topics, echoed in summaries.
                scores[key] += 1.0 / (rank + 1) + 0.25 * summaries.count(key)
        ranked = [k for k, _ in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))]
        picked: list[str] = []
        for key in ranked:
            used = sum(len(display[p].split()) + 1 for p in picked)
            if used + len(key.split()) > MAX_TITLE_WORDS:
                break
            if not any(set(key.split()) & set(p.split()) for p in picked):
                picked.append(key)
            if len(picked) == 2:
                break
        title = " and ".join(display[p] for p in picked)
        if is_generic_title(title):
            title = f"Conversation Between {join_names(request.participants)}"
        return " ".join(title.split()[:MAX_TITLE_WORDS])

    def summary(self, request: SummaryRequest) -> SummaryText:
        chunks = [c for c in request.chunks if c.utterances]
        if not chunks:
            return SummaryText(
                short="No speech was detected.",
                long_markdown="# Quick recap\n\nNo speech was detected.\n",
            )
        everything = [u for c in chunks for u in c.utterances]
        # Every view shows the topics next to the summaries: a sentence a topic already quotes
        # is not quoted again, and the recap and the subjects never share one either.
        quoted = " ".join(t.summary for t in request.topics)
        used = {attributed(u) for u in everything if attributed(u) in quoted}
        corpus = Corpus([c.utterances for c in chunks])
        short = self._short(corpus, everything, request, used)
        parts = ["# Quick recap", "", short, ""]
        subjects = self._subjects(chunks, request.topics, used)
        if subjects:
            parts += ["# Summary", ""]
        for heading, paragraph in subjects:
            parts += [f"**{heading}**", "", paragraph, ""]
        names = list(dict.fromkeys([*request.participants, *(u.name for u in everything)]))
        return SummaryText(
            short=short,
            long_markdown="\n".join(parts),
            action_items=action_items(everything, names),
        )

    def _short(
        self,
        corpus: Corpus,
        everything: list[Utterance],
        request: SummaryRequest,
        used: set[str],
    ) -> str:
        k = min(5, max(3, len(everything) // 12))
        fresh = _unused(everything, used)
        picks = [fresh[i] for i in corpus.central(fresh, corpus.weights.sum(axis=0), k)]
        used.update(attributed(u) for u in picks)
        speakers = list(dict.fromkeys(u.name for u in everything))
        subjects = list(dict.fromkeys(re.split(r"\s+and\s+", t.title)[0] for t in request.topics))
        lead = f"{join_names(speakers)} discussed {join_names(subjects[:3])}." if subjects else ""
        return " ".join([lead, *(attributed(u) for u in picks)]).strip()

    def _subjects(
        self, chunks: list[TopicChunk], topics: Sequence[TopicText], used: set[str]
    ) -> list[tuple[str, str]]:
        """≤ 6 subjects: consecutive chunks are grouped evenly when there are more than 6.

        A subject quotes only sentences nothing else quoted; one with none left is left out.
        """
        bounds = np.linspace(0, len(chunks), min(MAX_SUBJECTS, len(chunks)) + 1).round()
        groups = [chunks[int(a) : int(b)] for a, b in zip(bounds, bounds[1:], strict=False)]
        docs = [[u for c in g for u in c.utterances] for g in groups]
        corpus = Corpus(docs)
        out = []
        for d, group in enumerate(groups):
            single = len(group) == 1 and len(topics) == len(chunks)
            heading = topics[group[0].index].title if single else " and ".join(corpus.keyphrases(d))
            fresh = _unused(docs[d], used)
            picks = [fresh[i] for i in corpus.central(fresh, corpus.weights[d], 3)]
            used.update(attributed(u) for u in picks)
            if picks:
                out.append((heading or "Other Remarks", " ".join(attributed(u) for u in picks)))
        return out


def _unused(utterances: list[Utterance], used: set[str]) -> list[Utterance]:
    return [u for u in utterances if attributed(u) not in used]
