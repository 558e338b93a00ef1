"""Cut merged transcript words into ~300-word chunks and speaker sentences, for every backend.

Chunk cuts prefer a long pause, then a sentence end, near the target size; cuts fall between
words only, and a tiny tail chunk joins the previous one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from reflector_cli.core.models import Word
from reflector_cli.llm.base import TopicChunk, Utterance

TARGET_WORDS = 300
# Cuts are searched in [70 %, 130 %] of the target: far enough to find a natural break,
# close enough that chunk sizes stay predictable for prompts.
MIN_FACTOR, MAX_FACTOR = 0.7, 1.3
LONG_PAUSE_S = 2.0
SENTENCE_END = (".", "?", "!")


def is_sentence_end(word: Word) -> bool:
    return word.text.rstrip("\"')]").endswith(SENTENCE_END)


def _cut_score(words: Sequence[Word], i: int) -> float:
    """How good a cut before word `i` is: long pause > sentence end > speaker change > nothing."""
    prev, cur = words[i - 1], words[i]
    score = 0.0
    if cur.start - prev.end >= LONG_PAUSE_S:
        score += 3.0
    if is_sentence_end(prev):
        score += 2.0
    if cur.speaker != prev.speaker:
        score += 0.5
    return score


def chunk_ranges(words: Sequence[Word], target: int = TARGET_WORDS) -> list[tuple[int, int]]:
    """Word index ranges `[start, end)` covering all words contiguously, in order."""
    n = len(words)
    lo, hi = round(target * MIN_FACTOR), round(target * MAX_FACTOR)
    ranges: list[tuple[int, int]] = []
    s = 0
    while s < n:
        if n - s <= hi:
            ranges.append((s, n))
            break
        candidates = range(s + lo, min(s + hi, n - 1) + 1)
        # Best score wins; among equals the cut nearest the target, then the earliest.
        cut = max(candidates, key=lambda i: (_cut_score(words, i), -abs(i - s - target), -i))
        ranges.append((s, cut))
        s = cut
    # A tail shorter than a third of the target has too little to summarise on its own.
    if len(ranges) > 1 and ranges[-1][1] - ranges[-1][0] < target // 3:
        tail = ranges.pop()
        ranges[-1] = (ranges[-1][0], tail[1])
    return ranges


def utterances(
    words: Sequence[Word], names: Mapping[int, str], start: int = 0, end: int | None = None
) -> list[Utterance]:
    """Sentences of `words[start:end]`, split at sentence ends, speaker changes and long pauses."""
    end = len(words) if end is None else end
    out: list[Utterance] = []
    first = start
    for i in range(start, end):
        w = words[i]
        last = i == end - 1
        if not last:
            nxt = words[i + 1]
            boundary = (
                is_sentence_end(w) or nxt.speaker != w.speaker or nxt.start - w.end >= LONG_PAUSE_S
            )
        if last or boundary:
            span = words[first : i + 1]
            out.append(
                Utterance(
                    speaker=span[0].speaker,
                    name=speaker_name(names, span[0].speaker),
                    start=span[0].start,
                    end=span[-1].end,
                    text=" ".join(x.text for x in span),
                    word_start=first,
                    word_end=i + 1,
                )
            )
            first = i + 1
    return out


def speaker_name(names: Mapping[int, str], speaker: int) -> str:
    """The participant's name; the numbered label only when nobody told us the name."""
    return names.get(speaker) or f"Speaker {speaker + 1}"


def build_chunks(
    words: Sequence[Word], names: Mapping[int, str], ranges: Sequence[tuple[int, int]]
) -> list[TopicChunk]:
    return [
        TopicChunk(
            index=k,
            word_start=s,
            word_end=e,
            start=words[s].start,
            end=words[e - 1].end,
            utterances=utterances(words, names, s, e),
        )
        for k, (s, e) in enumerate(ranges)
        if e > s
    ]
