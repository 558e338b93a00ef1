"""Speech spans and talk time from word timings."""

from __future__ import annotations

from reflector_cli.core.models import Word
from reflector_cli.views.talk import speaker_spans, talk_seconds


def w(speaker: int, start: float, end: float) -> Word:
    return Word(text="x", start=start, end=end, speaker=speaker)


def test_spans_join_words_across_short_pauses_only() -> None:
    words = [w(0, 0, 1), w(1, 0.5, 2), w(0, 2.0, 3), w(0, 6.0, 7), {"speaker": 1, "start": 2.5,
             "end": 4.0, "text": "y"}]  # fmt: skip
    spans = speaker_spans(words)
    assert spans == {0: [(0, 3), (6, 7)], 1: [(0.5, 4.0)]}
    assert talk_seconds(words) == {0: 4.0, 1: 3.5}
    assert talk_seconds([]) == {}
