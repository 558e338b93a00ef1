"""Gather what the HTML report needs from the store and storage, then render it.

The database is the truth for content (names may have been edited after processing); the
finalize artifact, when it still exists, adds where and when the meeting happened.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

from reflector_cli.core import models as m
from reflector_cli.core.config import Settings
from reflector_cli.core.errors import UserError
from reflector_cli.storage import LocalStorage, Storage, open_storage
from reflector_cli.store.repo import Store
from reflector_cli.store.results import final_doc_from_store
from reflector_cli.views.report_html import ReportMeta, render_html

# A base64 data URI grows the page by 4/3 of the audio; past this the file is not "sane".
EMBED_MAX_BYTES = 64 * 1024 * 1024


def _where_and_when(
    store: Store, storage: Storage, run_id: str | None
) -> tuple[str | None, int | None]:
    """(room, started_at_ms) from the run's finalize artifact, if it is still there."""
    if not run_id:
        return None, None
    row = next((r for r in store.stage_runs(run_id) if r["stage"] == "finalize"), None)
    try:
        key = json.loads(row["output"])["doc_key"] if row and row["output"] else None
        if key and storage.exists(key):
            doc = m.FinalDoc.model_validate_json(storage.read_bytes(key))
            return doc.room, doc.started_at_ms
    except (ValueError, KeyError):
        pass  # an unreadable artifact only costs the date line
    return None, None


def _audio(
    storage: Storage, key: str | None, deleted: bool, embed: bool, limit: int
) -> tuple[str | None, str | None]:
    """(src, note): a file URL (or data URI with `embed`), else why there is no player."""
    if deleted:
        return (
            None,
            "The audio was deleted after processing: a participant did not consent to "
            "keeping the recording. The transcript is kept.",
        )
    if not key or not storage.exists(key):
        return None, "The mixdown audio is no longer in storage."
    if embed:
        size = storage.size(key)
        if size > limit:
            raise UserError(
                f"--embed-audio: the mixdown is {size / 2**20:.1f} MiB, over the "
                f"{limit / 2**20:.1f} MiB limit; export without --embed-audio to link it"
            )
        data = base64.b64encode(storage.read_bytes(key)).decode("ascii")
        return f"data:audio/mpeg;base64,{data}", None
    if isinstance(storage, LocalStorage):
        return storage.path(key).as_uri(), None
    return None, "The audio is in object storage; export with --embed-audio to include it."


def html_report(
    store: Store,
    settings: Settings,
    transcript_id: str,
    *,
    embed_audio: bool = False,
    embed_limit: int = EMBED_MAX_BYTES,
) -> str:
    row = store.transcript(transcript_id)
    if row is None:
        raise UserError(f"{transcript_id}: no such transcript")
    storage = open_storage(settings.storage_url, settings.data_dir)
    doc = final_doc_from_store(store, transcript_id)
    room, started_ms = _where_and_when(store, storage, row["run_id"])
    doc = doc.model_copy(
        update={"waveform": json.loads(row["waveform"] or "[]"), "room": room,
                "started_at_ms": started_ms}
    )  # fmt: skip
    deleted = bool(row["audio_deleted"])
    src, note = _audio(storage, row["audio_key"], deleted, embed_audio, embed_limit)
    when = (
        datetime.fromtimestamp(started_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
        if started_ms is not None
        else None
    )
    meta = ReportMeta(
        recorded_at=when,
        audio_src=src,
        audio_note=note,
        generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )
    return render_html(doc, meta)
