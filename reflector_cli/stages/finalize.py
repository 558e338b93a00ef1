"""finalize: gather everything the transcript is made of into one artifact (`final-*.json`).

The stage stays free of database code so it can run on any worker; the orchestrating
process commits that document to SQLite in one transaction (`pipeline.commit_final`).
"""

from __future__ import annotations

import hashlib

from reflector_cli.context import StageContext
from reflector_cli.models import FinalDoc, FinalizeIn, FinalizeOut, TranscriptDoc


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
        language=rec.language or inp.pipeline.asr.language,
        participants=inp.participants.participants,
        topics=inp.topics.topics,
        words=transcript.words,
        waveform=inp.waveform.peaks,
        audio_key=inp.mixdown.key,
        room=rec.room,
        started_at_ms=rec.started_at_ms,
    )
    # Keyed by its input: a reused checkpoint of other settings (e.g. --crosstalk, --llm) must
    # never find this run's document under its key.
    digest = hashlib.sha256(inp.model_dump_json().encode()).hexdigest()[:12]
    key = ctx.key(inp.pipeline.recording_id, f"final-{digest}.json")
    ctx.storage.write_bytes(key, doc.model_dump_json().encode())
    ctx.emit("DURATION", seconds=doc.duration_s)
    return FinalizeOut(doc_key=key, word_count=len(doc.words), topic_count=len(doc.topics))
