"""`process --dry-run`: what a run would do (tracks, offsets, provider) and what the LLM stages
would cost, without storing or calling anything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reflector_cli.core.config import Settings
from reflector_cli.llm.cost import estimate_cost
from reflector_cli.pipeline.runinput import prepare_input
from reflector_cli.sources.folder import scan_folder

# Conversational speech runs at ~150 words a minute; meetings rarely overlap for long.
WORDS_PER_MINUTE = 150


def _folder_tracks(pipe: Any) -> tuple[list[dict[str, Any]], list[str], float]:
    scan = scan_folder(Path(pipe.source), include_screen_audio=pipe.include_screen_audio)
    tracks = [
        {
            "file": t.file,
            "name": t.name or t.participant_id,
            "offset_s": t.offset_s,
            "duration_s": round(t.duration_s, 3),
            "consent": t.consent,
        }
        for t in scan.tracks
    ]
    return tracks, scan.warnings, max(t.offset_s + t.duration_s for t in scan.tracks)


def _daily_tracks(pipe: Any, settings: Settings) -> tuple[list[dict[str, Any]], list[str], float]:
    """Tracks as the Daily API lists them; nothing is downloaded."""
    from reflector_cli.sources.daily import client_from_settings, pick_tracks

    with client_from_settings(settings) as client:
        rec = client.get_recording(pipe.source)
    picked, warnings = pick_tracks(rec, pipe.include_screen_audio)
    tracks = [
        {
            "file": p.key,
            "name": p.name.participant_id,
            "offset_s": p.name.offset_s,
            "duration_s": None,
            "consent": True,
        }
        for p in picked
    ]
    return tracks, warnings, float(rec.duration or 0.0)


def dry_run_plan(source: str, settings: Settings) -> dict[str, Any]:
    pipe = prepare_input(source, settings)
    if pipe.source_kind == "daily":
        tracks, warnings, duration = _daily_tracks(pipe, settings)
    else:
        tracks, warnings, duration = _folder_tracks(pipe)
    words, words_source = _stored_words(settings, pipe.transcript_id)
    if words is None:
        words, words_source = round(duration / 60 * WORDS_PER_MINUTE), "estimated from duration"
    llm_settings = settings.model_copy(update={"llm": pipe.llm})
    return {
        "source": source,
        "recording_id": pipe.recording_id,
        "transcript_id": pipe.transcript_id,
        "provider": settings.provider,
        "duration_s": round(duration, 3),
        "tracks": tracks,
        "warnings": warnings,
        "words_estimate": words,
        "words_source": words_source,
        "llm": estimate_cost(words, llm_settings),
    }


def _stored_words(settings: Settings, transcript_id: str) -> tuple[int | None, str]:
    if not settings.db_path.exists():
        return None, ""
    from reflector_cli.store.repo import Store

    store = Store(settings.db_path)
    try:
        row = store.transcript(transcript_id)
    finally:
        store.close()
    if row and row["word_count"]:
        return int(row["word_count"]), "from the stored transcript"
    return None, ""
