"""merge_transcripts: all tracks' words in one time-ordered list, plus speaker-turn segments."""

from __future__ import annotations

import numpy as np

from reflector_cli.core.models import (
    CrosstalkDoc,
    MergeIn,
    MergeOut,
    Segment,
    TranscribeOut,
    TranscriptDoc,
    Word,
)
from reflector_cli.stages.asr import dominant_language, read_words
from reflector_cli.stages.context import StageContext
from reflector_cli.stages.crosstalk import suppress
from reflector_cli.stages.levels import Levels, track_envelope

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
    per_track = [read_words(ctx, t.words_key) for t in tracks]
    crosstalk = _crosstalk(inp, tracks, per_track, ctx)
    if crosstalk is not None:
        per_track = crosstalk[0]
    words = merge_words(per_track)
    doc = TranscriptDoc(words=words, segments=build_segments(words))
    # One artifact per setting, so switching --crosstalk back reuses a checkpoint whose
    # artifact the other setting did not overwrite.
    key = ctx.key(inp.recording_id, "transcript.json" if inp.crosstalk else "transcript-raw.json")
    ctx.storage.write_bytes(key, doc.model_dump_json().encode())
    return MergeOut(
        transcript_key=key,
        word_count=len(words),
        speakers=sorted({w.speaker for w in words}),
        duration_s=max((w.end for w in words), default=0.0),
        crosstalk=crosstalk is not None,
        crosstalk_removed=crosstalk[1] if crosstalk else [],
        crosstalk_key=crosstalk[2] if crosstalk else None,
        language=dominant_language(tracks),
    )


def _crosstalk(
    inp: MergeIn, tracks: list[TranscribeOut], per_track: list[list[Word]], ctx: StageContext
) -> tuple[list[list[Word]], list[int], str] | None:
    """Words with crosstalk removed, the count per track and the removed-words artifact; None
    when suppression is off or there is nothing to compare (one track, or no padded audio)."""
    padded = {p.track: p for p in inp.padded}
    if not inp.crosstalk or len(tracks) < 2 or any(t.track not in padded for t in tracks):
        return None
    if any(per_track):
        levels = Levels.from_envelopes([track_envelope(padded[t.track], ctx) for t in tracks])
    else:  # nothing to judge: skip decoding the audio
        levels = Levels.from_envelopes([np.zeros(0, dtype=np.float32) for _ in tracks])
    result = suppress(per_track, levels, [t.track for t in tracks])
    key = ctx.key(inp.recording_id, "crosstalk.json")
    ctx.storage.write_bytes(key, CrosstalkDoc(removed=result.removed).model_dump_json().encode())
    return result.kept, result.counts, key
