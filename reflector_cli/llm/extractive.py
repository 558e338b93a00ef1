"""The offline `extractive` backend: TF-IDF keyphrases and central sentences, numpy only.

No network and no model: titles come from the meeting's own keyphrases, summaries from its
own most central sentences, action items from commitment cues. Same input, same bytes out.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TypeVar

import numpy as np

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
from reflector_cli.models import ActionItems, Decision, NextStep

T = TypeVar("T", Decision, NextStep)


def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


STOP_WORDS = _wordset(
    """a about above actually after again against all almost also although always am among an
    and another any anybody anyone anything anyway are around as ask at away back be because
    been before being below between bit both but by can cannot come could did do does doing
    done down during each either else enough even ever every everyone everything exactly few
    first for from further get gets getting give go goes going gonna good got gotta great had
    has have having he her here hers him his how however i if in into is it its itself just
    kind kinda know last least less let like likely little look lot lots make makes many may
    maybe me mean might mine more most much must my myself need needs never new next no nobody
    none nor not nothing now of off oh ok okay on once one only or other others our ours out
    over own part perhaps pretty probably put quite rather really right said same say says see
    seem seems should since so some somebody someone something sort still such sure take talk
    than thank thanks that the their them then there these they thing things think this those
    though through thus to today together too totally um uh up upon us use used very via want
    wanted was way we well went were what whatever when where whether which while who whole
    whom whose why will wish with within without would yeah yep yes yet you your yours
    yourself"""
)
# Words that make a meeting title say nothing about this particular meeting.
GENERIC_TITLE_WORDS = _wordset(
    "team meeting meetings discussion discussions untitled sync call weekly daily standup "
    "stand-up update updates chat general misc notes check-in checkin catch-up recap"
)
MAX_TITLE_WORDS = 10
MAX_SUBJECTS = 6

_TOKEN = re.compile(r"[A-Za-z0-9]+(?:['’][A-Za-z]+)*")
_FILLER = re.compile(
    r"^(?:(?:so|um+|uh+|okay|ok|yeah|yes|well|and|right|alright|oh|anyway|great|good|sure|fair"
    r"|fine|cool)[,.!]?\s+)+",
    re.I,
)
_INNER_FILLER = re.compile(r"\b(?:um+|uh+)[,.]?\s+", re.I)
_DECISION = re.compile(r"\b(?:decided|agreed|decision|settled on|we'll go with)\b", re.I)
_COMMIT = re.compile(
    r"\b(?:i will|i'll|i'm going to|i am going to|i can take|i'll take|we need to|we'll need to"
    r"|let's|let us|action item|we will|we'll)\b",
    re.I,
)
# "Let's start with…" steers the meeting; it is not work anyone takes away.
_MEETING_FLOW = re.compile(
    r"\blet's (?:start|begin|move on|go on|talk|get started|wrap|look|recap|continue)\b", re.I
)
_REQUEST = re.compile(r"\b(?:can|could|will|would) you\b", re.I)
_WEEKDAY = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
_MONTH = (
    r"(?:january|february|march|april|may|june|july|august|september|october|november|december)"
)
_DEADLINE = re.compile(
    rf"\b(?:(?:next|this) )?{_WEEKDAY}\b|\btomorrow\b|\btonight\b"
    r"|\bend of (?:the )?(?:day|week|month|quarter|sprint)\b|\bnext (?:week|month|sprint)\b"
    rf"|\b{_MONTH} \d{{1,2}}(?:st|nd|rd|th)?\b|\bthe \d{{1,2}}(?:st|nd|rd|th)\b",
    re.I,
)
_BY_DEADLINE = re.compile(rf"\bby (?:(?:next|this) )?(?:{_WEEKDAY}|tomorrow|end of)\b", re.I)
_LEADING_CUE = re.compile(
    r"^(?:i will|i'll|i'm going to|i am going to|i can|we need to|we'll need to|we will|we'll"
    r"|let's|let us|(?:can|could|will|would) you(?: please)?)\s+",
    re.I,
)


# --------------------------------------------------------------------------- text helpers


def _norm(token: str) -> str | None:
    """Lower-cased content term, or None for stop words, contractions, numbers, tiny words."""
    t = token.lower().replace("’", "'")
    t = t.removesuffix("'s")
    if "'" in t or len(t) < 3 or t.isdigit() or t in STOP_WORDS:
        return None
    return t


def _terms(text: str) -> list[str]:
    """Unigrams plus bigrams of adjacent content words (a stop word breaks a bigram)."""
    norm = [_norm(t) for t in _TOKEN.findall(text)]
    out = [t for t in norm if t]
    out += [f"{a} {b}" for a, b in zip(norm, norm[1:], strict=False) if a and b]
    return out


def clean_sentence(text: str) -> str:
    """Drop spoken fillers at the start and um/uh inside; capitalise; keep the punctuation."""
    out = _INNER_FILLER.sub("", _FILLER.sub("", text.strip())).strip()
    if not out:
        return text.strip()
    return out[0].upper() + out[1:]


def _ensure_period(text: str) -> str:
    return text if text.endswith((".", "?", "!")) else text + "."


def _attributed(u: Utterance) -> str:
    return f"{u.name}: {_ensure_period(clean_sentence(u.text))}"


def _join_names(names: Sequence[str]) -> str:
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def is_generic_title(title: str | None) -> bool:
    """True when a title carries no meeting-specific word ("Team Meeting", "Untitled")."""
    if not title:
        return True
    words = {w.lower() for w in _TOKEN.findall(title)}
    return not (words - GENERIC_TITLE_WORDS - STOP_WORDS)


# --------------------------------------------------------------------------- TF-IDF corpus


class _Corpus:
    """TF-IDF over documents (lists of utterances); each document is one chunk or subject."""

    def __init__(self, docs: Sequence[Sequence[Utterance]]) -> None:
        self.docs = docs
        counts = [Counter(t for u in doc for t in _terms(u.text)) for doc in docs]
        self.vocab = sorted(set().union(*counts)) if counts else []
        self.index = {t: i for i, t in enumerate(self.vocab)}
        self.tf = np.zeros((len(docs), len(self.vocab)))
        for d, c in enumerate(counts):
            for term, n in c.items():
                self.tf[d, self.index[term]] = n
        df = (self.tf > 0).sum(axis=0)
        # Smoothed idf keeps a term present in every chunk positive (one-chunk meetings work).
        self.idf = np.log((1 + len(docs)) / (1 + df)) + 1.0
        self.weights = self._weigh(self.tf)
        self.surface = self._surface_forms(u for doc in docs for u in doc)

    def _weigh(self, tf: np.ndarray) -> np.ndarray:
        # Sublinear tf: a word said ten times is not ten times as topical as one said once.
        return np.where(tf > 0, 1.0 + np.log(np.maximum(tf, 1.0)), 0.0) * self.idf

    @staticmethod
    def _surface_forms(utterances: Iterable[Utterance]) -> dict[str, str]:
        """Most frequent spelling of each term, so "API" and "iOS" keep their case in titles."""
        seen: dict[str, Counter[str]] = {}
        for u in utterances:
            for tok in _TOKEN.findall(u.text):
                key = _norm(tok)
                if key:
                    seen.setdefault(key, Counter())[tok.replace("’s", "").removesuffix("'s")] += 1
        return {k: sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[0][0] for k, c in seen.items()}

    def vector(self, utterances: Iterable[Utterance]) -> np.ndarray:
        tf = np.zeros(len(self.vocab))
        for u in utterances:
            for term in _terms(u.text):
                i = self.index.get(term)
                if i is not None:
                    tf[i] += 1
        return self._weigh(tf)

    def keyphrases(self, d: int, k: int = 2) -> list[str]:
        """Top `k` non-overlapping phrases of document `d`; bigrams need two mentions."""
        scored = []
        for i in np.flatnonzero(self.tf[d]):
            term = self.vocab[i]
            bigram = " " in term
            if bigram and self.tf[d, i] < 2:
                continue
            scored.append((-(self.weights[d, i] * (1.5 if bigram else 1.0)), term))
        picked: list[str] = []
        for _, term in sorted(scored):
            words = set(term.split())
            if any(words & set(p.split()) for p in picked):
                continue
            picked.append(term)
            if len(picked) == k:
                break
        return [self.title_case(p) for p in picked]

    def title_case(self, phrase: str) -> str:
        out = []
        for w in phrase.split():
            s = self.surface.get(w, w)
            out.append(s if any(c.isupper() for c in s[1:]) else s[:1].upper() + s[1:].lower())
        return " ".join(out)

    def central(self, utterances: Sequence[Utterance], target: np.ndarray, k: int) -> list[int]:
        """Indices (time order) of `k` sentences most like `target`, avoiding near-repeats."""
        pool = [i for i, u in enumerate(utterances) if 6 <= len(u.text.split()) <= 50]
        pool = pool or list(range(len(utterances)))
        vecs = {i: self.vector([utterances[i]]) for i in pool}
        sims = {i: _cosine(vecs[i], target) for i in pool}
        chosen: list[int] = []
        while pool and len(chosen) < k:
            # Maximal marginal relevance: central, but not a paraphrase of what is already in.
            def mmr(i: int) -> tuple[float, int]:
                redundancy = max((_cosine(vecs[i], vecs[j]) for j in chosen), default=0.0)
                return (round(0.75 * sims[i] - 0.25 * redundancy, 12), -i)

            best = max(pool, key=mmr)
            chosen.append(best)
            pool.remove(best)
        return sorted(chosen)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return float(a @ b) / (na * nb) if na and nb else 0.0


# --------------------------------------------------------------------------- action items


def _assignee(u: Utterance, participants: Sequence[str]) -> str | None:
    """The other participant the sentence hands work to, or None.

    Checked in order: addressed by name with a request ("Carol, can you…"), named as the doer
    ("Bob will…"), then merely named in a request ("could you ask Dana…" counts for Dana).
    """
    text = clean_sentence(u.text)
    forms = [
        (name, re.escape(form))
        for name in participants
        if name != u.name
        for form in dict.fromkeys((name, name.split()[0]))
    ]
    request = _REQUEST.search(text)
    for name, f in forms:
        if request and (re.match(rf"{f},", text) or re.search(rf",\s*{f}\W*$", text)):
            return name
    for name, f in forms:
        if re.search(rf"\b{f}(?:'ll| will| is going to| can take)\b", text):
            return name
    for name, f in forms:
        if request and re.search(rf"\b{f}\b", text):
            return name
    return None


def _task(u: Utterance, assignee: str) -> str:
    text = clean_sentence(u.text)
    for form in dict.fromkeys((assignee, assignee.split()[0])):
        # "Carol, can you update…" and "Bob will check…" both become the bare task.
        text = re.sub(rf"^{re.escape(form)}(?:,|'ll| will| is going to)\s*", "", text)
    text = _FILLER.sub("", text)
    text = _LEADING_CUE.sub("", text).rstrip(".?! ")
    return text[:1].upper() + text[1:]


def action_items(utterances: Sequence[Utterance], participants: Sequence[str]) -> ActionItems:
    decisions: list[Decision] = []
    steps: list[NextStep] = []
    for u in utterances:
        text = u.text
        question = text.rstrip().endswith("?")
        commit = _COMMIT.search(text) and not _MEETING_FLOW.search(text)
        if _DECISION.search(text) and not question:
            sentence = _ensure_period(clean_sentence(text))
            decisions.append(Decision(decision=sentence, decided_by=u.name))
            if not commit:
                continue
        other = _assignee(u, participants)
        # A question is a next step only when it asks a named someone to do something.
        if question and other is None:
            continue
        if not (commit or other or _BY_DEADLINE.search(text)):
            continue
        who = other or u.name
        deadline = _DEADLINE.search(text)
        steps.append(
            NextStep(
                task=_task(u, who),
                assigned_to=who,
                deadline=deadline.group(0) if deadline else None,
            )
        )
    return ActionItems(decisions=_dedupe(decisions), next_steps=_dedupe(steps))


def _dedupe(items: list[T]) -> list[T]:
    return list({i.model_dump_json(): i for i in items}.values())


# --------------------------------------------------------------------------- the backend


class ExtractiveBackend(Backend):
    name = "extractive"

    def topic(self, chunk: TopicChunk, chunks: Sequence[TopicChunk]) -> TopicText:
        corpus = _Corpus([c.utterances for c in chunks])
        d = next(i for i, c in enumerate(chunks) if c.index == chunk.index)
        return self._topic(corpus, d, chunk)

    def topics(
        self, chunks: Sequence[TopicChunk], progress: ProgressFn | None = None
    ) -> list[TopicText]:
        # One corpus for the whole meeting instead of one per chunk: same result, less work.
        corpus = _Corpus([c.utterances for c in chunks])
        out = []
        for d, chunk in enumerate(chunks):
            out.append(self._topic(corpus, d, chunk))
            if progress is not None:
                progress(d + 1, len(chunks))
        return out

    def _topic(self, corpus: _Corpus, d: int, chunk: TopicChunk) -> TopicText:
        phrases = corpus.keyphrases(d, 2)
        names = list(dict.fromkeys(u.name for u in chunk.utterances))
        title = " and ".join(phrases) if phrases else f"Remarks from {_join_names(names)}"
        picks = corpus.central(chunk.utterances, corpus.weights[d], 2)
        summary = " ".join(_attributed(chunk.utterances[i]) for i in picks)
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
            title = f"Conversation Between {_join_names(request.participants)}"
        return " ".join(title.split()[:MAX_TITLE_WORDS])

    def summary(self, request: SummaryRequest) -> SummaryText:
        chunks = [c for c in request.chunks if c.utterances]
        if not chunks:
            return SummaryText(
                short="No speech was detected.",
                long_markdown="# Quick recap\n\nNo speech was detected.\n",
            )
        everything = [u for c in chunks for u in c.utterances]
        corpus = _Corpus([c.utterances for c in chunks])
        short = self._short(corpus, everything, request)
        parts = ["# Quick recap", "", short, "", "# Summary", ""]
        for heading, paragraph in self._subjects(chunks, request.topics):
            parts += [f"**{heading}**", "", paragraph, ""]
        names = list(dict.fromkeys([*request.participants, *(u.name for u in everything)]))
        return SummaryText(
            short=short,
            long_markdown="\n".join(parts),
            action_items=action_items(everything, names),
        )

    def _short(self, corpus: _Corpus, everything: list[Utterance], request: SummaryRequest) -> str:
        k = min(5, max(3, len(everything) // 12))
        picks = corpus.central(everything, corpus.weights.sum(axis=0), k)
        speakers = list(dict.fromkeys(u.name for u in everything))
        subjects = list(dict.fromkeys(re.split(r"\s+and\s+", t.title)[0] for t in request.topics))
        lead = f"{_join_names(speakers)} discussed {_join_names(subjects[:3])}." if subjects else ""
        return " ".join([lead, *(_attributed(everything[i]) for i in picks)]).strip()

    def _subjects(
        self, chunks: list[TopicChunk], topics: Sequence[TopicText]
    ) -> list[tuple[str, str]]:
        """≤ 6 subjects: consecutive chunks are grouped evenly when there are more than 6."""
        bounds = np.linspace(0, len(chunks), min(MAX_SUBJECTS, len(chunks)) + 1).round()
        groups = [chunks[int(a) : int(b)] for a, b in zip(bounds, bounds[1:], strict=False)]
        docs = [[u for c in g for u in c.utterances] for g in groups]
        corpus = _Corpus(docs)
        out = []
        for d, group in enumerate(groups):
            single = len(group) == 1 and len(topics) == len(chunks)
            heading = topics[group[0].index].title if single else " and ".join(corpus.keyphrases(d))
            picks = corpus.central(docs[d], corpus.weights[d], 3)
            paragraph = " ".join(_attributed(docs[d][i]) for i in picks)
            out.append((heading or "Other Remarks", paragraph))
        return out
