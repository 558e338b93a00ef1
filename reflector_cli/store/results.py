"""A stored transcript read back: the `process --json` view and the FinalDoc exports render."""

from __future__ import annotations

from typing import Any

from reflector_cli.core import models as m
from reflector_cli.core.errors import UserError
from reflector_cli.store.repo import Store


def result_view(store: Store, transcript_id: str) -> dict[str, Any]:
    """The `process --json` contract for a stored transcript."""
    t = store.transcript(transcript_id)
    if t is None:
        raise UserError(f"{transcript_id}: no such transcript")
    return {
        "transcript_id": t["id"],
        "run_id": t["run_id"],
        "status": t["status"],
        "duration_s": t["duration_s"],
        "language": t["language"],
        "title": t["title"],
        "short_summary": t["short_summary"],
        "long_summary": t["long_summary"],
        "participants": [
            {"speaker": p["speaker"], "name": p["name"]} for p in store.participants(t["id"])
        ],
        "topics": [
            {k: tp[k] for k in ("title", "summary", "start", "duration")}
            for tp in store.topics(t["id"])
        ],
        "word_count": t["word_count"],
    }


def final_doc_from_store(store: Store, transcript_id: str) -> m.FinalDoc:
    """Rebuild the FinalDoc from SQLite rows (exports read the database, not artifacts)."""
    t = store.transcript(transcript_id)
    if t is None:
        raise UserError(f"{transcript_id}: no such transcript")
    return m.FinalDoc(
        transcript_id=t["id"],
        recording_id=t["recording_id"],
        title=t["title"],
        short_summary=t["short_summary"] or "",
        long_summary=t["long_summary"] or "",
        action_items=m.ActionItems.model_validate_json(t["action_items"] or "{}"),
        duration_s=t["duration_s"] or 0.0,
        language=t["language"] or "en",
        participants=[
            m.Participant(
                speaker=p["speaker"],
                participant_id=p["participant_id"],
                name=p["name"],
                user_id=p["user_id"],
                consent=bool(p["consent"]),
                track_key=p["track_key"],
            )
            for p in store.participants(t["id"])
        ],
        topics=[
            m.Topic(
                title=tp["title"],
                summary=tp["summary"],
                start=tp["start"],
                duration=tp["duration"],
                word_start=tp["word_start"],
                word_end=tp["word_end"],
            )
            for tp in store.topics(t["id"])
        ],
        words=[m.Word(**w) for w in store.words(t["id"])],
        waveform=[],
        audio_key=t["audio_key"],
    )
