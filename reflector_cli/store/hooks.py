"""Stage hooks: turn finished stage outputs into SQLite rows in the orchestrating process.

Keyed by stage name: `ON_DONE` commits to the user-visible transcript (primary runs only),
`ON_OUTPUT` records events (every run). The recorder applies them; the DAG never names them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from pydantic import BaseModel

from reflector_cli.core import models as m
from reflector_cli.core.config import Settings
from reflector_cli.storage import open_storage
from reflector_cli.store.meetings import reapply_renames
from reflector_cli.store.repo import Store


class HookContext(Protocol):
    """What a hook may use: the orchestrating process's store, settings, run and event sink."""

    store: Store
    settings: Settings
    pipe: m.PipelineInput
    run_id: str
    sink: Callable[[str, dict[str, Any]], None]


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


ON_DONE: dict[str, HookFn] = {"finalize": commit_final, "cleanup_consent": commit_consent}
ON_OUTPUT: dict[str, HookFn] = {"merge_transcripts": emit_transcript}
