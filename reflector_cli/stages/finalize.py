"""finalize: gather everything the transcript is made of into one artifact (`final-*.json`).

The stage stays free of database code so it can run on any worker; the orchestrating
process commits that document to SQLite in one transaction (`hooks.commit_final`).
"""

from __future__ import annotations

import hashlib

from reflector_cli.core.models import FinalDoc, FinalizeIn, FinalizeOut, TranscriptDoc
from reflector_cli.stages.context import StageContext


def _language(inp: FinalizeIn) -> str:
    asked = inp.pipeline.asr.language
    if asked == "auto":
        return inp.merge.language or "en"
    return asked


def finalize(inp: FinalizeIn, ctx: StageContext) -> FinalizeOut:
    transcript = TranscriptDoc.model_validate_json(ctx.storage.read_bytes(inp.merge.transcript_key))
    rec = inp.recording
    duration = max(rec.duration_s or 0.0, inp.mixdown.duration_s, inp.merge.duration_s)
    doc = FinalDoc(
        transcript_id=inp.pipeline.transcript_id,
        recording_id=inp.pipeline.recording_id,
        title=inp.title.title,
        short_summary=inp.summary.short_summary,
        long_summary=inp.summary.long_summary,
        action_items=inp.summary.action_items,
        duration_s=round(duration, 3),
        # The run's language was resolved from flag > manifest > env before it started;
        # "auto" becomes the language most words were transcribed in.
        language=_language(inp),
        participants=inp.participants.participants,
        topics=inp.topics.topics,
        words=transcript.words,
        waveform=inp.waveform.peaks,
        audio_key=inp.mixdown.key,
        room=rec.room,
        started_at_ms=rec.started_at_ms,
    )
    # Keyed by its content: a reused checkpoint of other settings (e.g. --crosstalk, --llm) must
    # never find this run's document under its key, while runs that agree (a shadow, another
    # provider) share one key even when run-only fields of their inputs differ.
    body = doc.model_dump_json().encode()
    key = ctx.key(inp.pipeline.recording_id, f"final-{hashlib.sha256(body).hexdigest()[:12]}.json")
    ctx.storage.write_bytes(key, body)
    ctx.emit("DURATION", seconds=doc.duration_s)
    return FinalizeOut(doc_key=key, word_count=len(doc.words), topic_count=len(doc.topics))
