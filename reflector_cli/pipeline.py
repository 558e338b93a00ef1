"""What every provider shares around the DAG: preparing a run's input, the event sink, and the
hooks that turn finished stage outputs into SQLite rows in the orchestrating process.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel

from reflector_cli import models as m
from reflector_cli.config import Settings
from reflector_cli.errors import UserError
from reflector_cli.execute import asr_options
from reflector_cli.llm import default_backend_name
from reflector_cli.storage import open_storage
from reflector_cli.store.meetings import reapply_renames
from reflector_cli.store.repo import Store

# Events not worth a row each: they are rendered live and dropped.
EPHEMERAL_EVENTS = frozenset({"PROGRESS"})


def new_run_id() -> str:
    return "r-" + uuid.uuid4().hex[:12]


def transcript_id_for(recording_id: str) -> str:
    return "t-" + hashlib.sha256(recording_id.encode()).hexdigest()[:16]


def looks_like_path(source: str) -> bool:
    return "/" in source or source.startswith(".") or source.startswith("~")


def prepare_input(source: str, settings: Settings) -> m.PipelineInput:
    """Validate the recording reference and build the run input; raises UserError on bad input."""
    from reflector_cli.sources.folder import recording_id_for_folder, scan_folder

    path = Path(source).expanduser()
    if path.exists() or looks_like_path(source):
        if not path.exists():
            raise UserError(f"{source}: no such file or directory")
        if not path.is_dir():
            raise UserError(f"{source}: not a folder (expected one audio file per participant)")
        scan_folder(path, include_screen_audio=settings.include_screen_audio)
        recording_id = recording_id_for_folder(path)
        kind, ref = "folder", str(path.resolve())
    else:
        from reflector_cli.sources.daily import prepare_daily

        recording_id, ref = prepare_daily(source, settings)
        kind = "daily"
    asr = asr_options(settings)
    preflight_model(asr)
    return m.PipelineInput(
        recording_id=recording_id,
        transcript_id=transcript_id_for(recording_id),
        source_kind=kind,
        source=ref,
        asr=asr,
        llm=default_backend_name(settings),
        llm_model=settings.llm_model,
        include_screen_audio=settings.include_screen_audio,
        crosstalk=settings.crosstalk,
    )


def preflight_model(asr: m.AsrOptions) -> None:
    """Refuse a model path that is not a CTranslate2 model directory before anything is
    stored (transcribe_track would only find out after the run has begun)."""
    from reflector_cli.stages.asr import _model_ref

    _model_ref(asr)


class Observer(Protocol):
    def event(self, event_type: str, data: dict[str, Any]) -> None: ...


class EventSink:
    """Persists a run's events (append-only rows) and forwards them to a live observer."""

    def __init__(
        self, store: Store, transcript_id: str, run_id: str, observer: Observer | None = None
    ) -> None:
        self.store = store
        self.transcript_id = transcript_id
        self.run_id = run_id
        self.observer = observer
        self.persist = True

    def __call__(self, event_type: str, data: dict[str, Any]) -> None:
        if self.persist and event_type not in EPHEMERAL_EVENTS:
            self.store.add_event(self.transcript_id, self.run_id, event_type, data)
        if self.observer is not None:
            self.observer.event(event_type, data)


# --------------------------------------------------------------------------- stage hooks
# Declared on the stage in dag.py (`on_done`), run by the provider in the orchestrating process.


class HookContext(Protocol):
    """What a hook may use: the orchestrating process's store, settings, run and event sink."""

    store: Store
    settings: Settings
    pipe: m.PipelineInput
    run_id: str
    sink: EventSink


HookFn = Callable[[HookContext, BaseModel], None]


def commit_final(hc: HookContext, output: BaseModel) -> None:
    assert isinstance(output, m.FinalizeOut)
    storage = open_storage(hc.settings.storage_url, hc.settings.data_dir)
    doc = m.FinalDoc.model_validate_json(storage.read_bytes(output.doc_key))
    hc.store.commit_final(doc, hc.run_id)
    reapply_renames(hc.store, doc.transcript_id)  # names people set after an earlier run
    hc.sink("STATUS", {"value": "ended"})


def emit_transcript(hc: HookContext, output: BaseModel) -> None:
    """Record the merged text as this run's TRANSCRIPT event, whichever provider merged it
    (the artifact key is shared by runs of a recording; the event row is the run's own)."""
    assert isinstance(output, m.MergeOut)
    storage = open_storage(hc.settings.storage_url, hc.settings.data_dir)
    doc = m.TranscriptDoc.model_validate_json(storage.read_bytes(output.transcript_key))
    hc.sink("TRANSCRIPT", {"text": " ".join(w.text for w in doc.words)})


def commit_consent(hc: HookContext, output: BaseModel) -> None:
    assert isinstance(output, m.ConsentOut)
    if output.consent_denied and output.audio_deleted:
        hc.store.set_audio_deleted(hc.pipe.transcript_id)


# --------------------------------------------------------------------------- views


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
