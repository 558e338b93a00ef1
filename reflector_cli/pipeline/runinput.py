"""A run's input: the recording reference validated into a `PipelineInput`, and run ids."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reflector_cli.core import models as m
from reflector_cli.core.config import Settings
from reflector_cli.core.errors import UserError
from reflector_cli.core.languages import check_model_language, resolve_language
from reflector_cli.llm import default_backend_name
from reflector_cli.pipeline import dag
from reflector_cli.pipeline.execute import asr_options


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
        scan = scan_folder(path, include_screen_audio=settings.include_screen_audio)
        language = scan.language
        recording_id = recording_id_for_folder(path)
        kind, ref = "folder", str(path.resolve())
    else:
        from reflector_cli.sources.daily import prepare_daily

        recording_id, ref = prepare_daily(source, settings)
        kind, language = "daily", None
    # asr_options resolves the model (a CTranslate2 directory, else a one-line error) before
    # anything is stored: transcribe_track would only find out after the run has begun.
    asr = asr_options(settings)
    asr = asr.model_copy(update={"language": resolve_language(settings, language)})
    check_model_language(asr.model, asr.language)
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


def audio_seconds(outputs: Mapping[str, Any], pipe: m.PipelineInput | None = None) -> float | None:
    """The meeting's length, which sizes stage timeouts: the recording stage's figure once it
    is among `outputs`; before that, given `pipe`, a folder source's own (an engine sizes its
    timeouts at submit). Local and Celery start no stage needing it before the recording
    stage, so they pass no `pipe` and never scan the folder again."""
    rec = outputs.get(dag.FANOUT_SOURCE)
    if isinstance(rec, m.RecordingOut):
        return rec.duration_s
    if pipe is None or pipe.source_kind != "folder":
        return None
    from reflector_cli.sources.folder import scan_folder

    scan = scan_folder(Path(pipe.source), include_screen_audio=pipe.include_screen_audio)
    return max((t.offset_s + t.duration_s for t in scan.tracks), default=0.0)
