"""merge_transcripts: all tracks' words in one time-ordered list, plus speaker-turn segments."""

from __future__ import annotations

from reflector_cli.context import StageContext
from reflector_cli.models import MergeIn, MergeOut, Segment, TranscriptDoc, Word
from reflector_cli.stages.asr import dominant_language, read_words

SEGMENT_SOFT_CHARS = 120
SENTENCE_END = (".", "?", "!")


def merge_words(per_track: list[list[Word]]) -> list[Word]:
    """Stable sort by start: ties keep track order because tracks are concatenated in order."""
    merged = [w for words in per_track for w in words]
    merged.sort(key=lambda w: w.start)
    return merged


def build_segments(words: list[Word]) -> list[Segment]:
    """New segment on speaker change, or at a sentence end once a segment passes ~120 chars."""
    segments: list[Segment] = []
    cur: list[Word] = []
    for w in words:
        if cur and w.speaker != cur[-1].speaker:
            segments.append(_segment(cur))
            cur = []
        cur.append(w)
        if w.text.endswith(SENTENCE_END) and len(_text(cur)) > SEGMENT_SOFT_CHARS:
            segments.append(_segment(cur))
            cur = []
    if cur:
        segments.append(_segment(cur))
    return segments


def _text(words: list[Word]) -> str:
    return " ".join(w.text for w in words)


def _segment(words: list[Word]) -> Segment:
    return Segment(
        speaker=words[0].speaker, start=words[0].start, end=words[-1].end, text=_text(words)
    )


def merge_transcripts(inp: MergeIn, ctx: StageContext) -> MergeOut:
    tracks = sorted(inp.tracks, key=lambda t: t.track)
    words = merge_words([read_words(ctx, t.words_key) for t in tracks])
    doc = TranscriptDoc(words=words, segments=build_segments(words))
    key = ctx.key(inp.recording_id, "transcript.json")
    ctx.storage.write_bytes(key, doc.model_dump_json().encode())
    return MergeOut(
        transcript_key=key,
        word_count=len(words),
        speakers=sorted({w.speaker for w in words}),
        duration_s=max((w.end for w in words), default=0.0),
        language=dominant_language(tracks),
    )
