"""`reflector replay`: re-execute a past run from its recorded input, version-locked by default.

Without --force, a run whose stage code changed since it ran is refused (the result would not
be a replay). With --force, current code runs: stages whose code or input changed execute,
the rest come from checkpoints. --from STAGE re-executes that stage and everything downstream,
taking upstream outputs from the replayed run itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from reflector_cli.core import models as m
from reflector_cli.core.config import Settings
from reflector_cli.core.errors import UserError
from reflector_cli.core.lock import recording_lock
from reflector_cli.core.textmetrics import word_error_rate
from reflector_cli.pipeline import dag
from reflector_cli.pipeline.runinput import new_run_id
from reflector_cli.pipeline.versioning import code_version
from reflector_cli.providers.recorder import Recorder
from reflector_cli.runs.process import make_provider
from reflector_cli.storage import open_storage
from reflector_cli.store.events import EventSink, Observer
from reflector_cli.store.repo import Store

AUDIO_STAGES = frozenset(dag.ancestors("detect_topics") | {"mixdown_tracks", "generate_waveform"})


@dataclass
class ReplayResult:
    old_run: str
    new_run: str
    status: str
    rerun: list[str]
    changed_code: list[str]
    diff: dict[str, Any] = field(default_factory=dict)
    error_stage: str | None = None
    error: str | None = None


def changed_stages(store: Store, run_id: str) -> list[str]:
    """Stages whose recorded code version differs from the code installed now."""
    rows = store.stage_runs(run_id)
    recorded = {r["stage"]: r["code_version"] for r in rows if r["code_version"]}
    return [s for s in dag.STAGE_NAMES if s in recorded and recorded[s] != code_version(s)]


def _outputs(store: Store, run_id: str) -> dict[tuple[str, int | None], dict[str, Any]]:
    return {
        (r["stage"], r["track"]): r
        for r in store.stage_runs(run_id)
        if r["status"] == "done" and r["output"]
    }


def _snapshot(store: Store, settings: Settings, run_id: str) -> dict[str, Any]:
    """What the diff compares, read before the new run overwrites shared artifacts."""
    outs = {k[0]: json.loads(v["output"]) for k, v in _outputs(store, run_id).items()}
    snap: dict[str, Any] = {
        "title": outs.get("generate_title", {}).get("title"),
        "short_summary": outs.get("generate_summary", {}).get("short_summary"),
        "long_summary": outs.get("generate_summary", {}).get("long_summary"),
        "topics": [t["title"] for t in outs.get("detect_topics", {}).get("topics", [])],
        "words": [],
    }
    key = outs.get("merge_transcripts", {}).get("transcript_key")
    storage = open_storage(settings.storage_url, settings.data_dir)
    if key and storage.exists(key):
        doc = m.TranscriptDoc.model_validate_json(storage.read_bytes(key))
        snap["words"] = [w.text for w in doc.words]
    return snap


def _diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("title", "short_summary", "long_summary", "topics"):
        out[key] = {"changed": old[key] != new[key], "old": old[key], "new": new[key]}
    out["transcript"] = {
        "wer": round(word_error_rate(old["words"], new["words"]), 4),
        "old_words": len(old["words"]),
        "new_words": len(new["words"]),
    }
    return out


def _check_consent(store: Store, pipe: m.PipelineInput, rerun: set[str]) -> None:
    t = store.transcript(pipe.transcript_id)
    needs_audio = sorted(rerun & AUDIO_STAGES)
    if t and t["audio_deleted"] and needs_audio:
        raise UserError(
            f"run's audio was deleted for consent reasons; cannot re-run {', '.join(needs_audio)}"
            " (use --from detect_topics to replay only the text stages)"
        )


def plan(
    store: Store, run_id: str, force: bool, from_stage: str | None
) -> tuple[set[str], list[str]]:
    """Which stages must execute, and which stage versions changed since the run."""
    changed = changed_stages(store, run_id)
    if changed and not force:
        raise UserError(
            f"run {run_id}: stage code changed since it ran ({', '.join(changed)}); "
            "pass --force to replay with the current code"
        )
    if from_stage is not None:
        if from_stage not in dag.BY_NAME:
            raise UserError(f"--from {from_stage}: unknown stage ({', '.join(dag.STAGE_NAMES)})")
        return {from_stage} | dag.descendants(from_stage), changed
    rows = store.stage_runs(run_id)
    unfinished = {r["stage"] for r in rows if r["status"] != "done"}
    unfinished |= {s for s in dag.STAGE_NAMES if s not in {r["stage"] for r in rows}}
    rerun = set(changed) | unfinished
    for s in list(rerun):
        rerun |= dag.descendants(s)
    return rerun, changed


def replay(
    run_ref: str,
    settings: Settings,
    *,
    force: bool = False,
    from_stage: str | None = None,
    observer: Observer | None = None,
) -> ReplayResult:
    store = Store(settings.db_path)
    try:
        old = store.run(run_ref)
        if old is None:
            raise UserError(f"{run_ref}: no such run")
        pipe = m.PipelineInput.model_validate_json(old["input"])
        rerun, changed = plan(store, old["id"], force, from_stage)
        _check_consent(store, pipe, rerun)
        with recording_lock(settings, pipe.recording_id):
            return _replay_locked(
                store, settings, old, pipe, rerun, changed, from_stage, observer, force
            )
    finally:
        store.close()


def _replay_locked(
    store: Store,
    settings: Settings,
    old: dict[str, Any],
    pipe: m.PipelineInput,
    rerun: set[str],
    changed: list[str],
    from_stage: str | None,
    observer: Observer | None,
    force: bool = False,
) -> ReplayResult:
    before = _snapshot(store, settings, old["id"])
    run_id = new_run_id()
    store.create_run(run_id, pipe, old["provider"], force=bool(changed), replay_of=old["id"])
    sink = EventSink(store, pipe.transcript_id, run_id, observer)
    log = Recorder(store, settings, pipe, run_id, sink, reuse=True)
    if from_stage is not None:
        log.pinned = {k: v for k, v in _outputs(store, old["id"]).items() if k[0] not in rerun}
    try:
        prov = make_provider(old["provider"], settings, log, rerun)
        engine_replay = getattr(prov, "replay_failed", None)
        if engine_replay is not None and not force and from_stage is None:
            # A provider on an engine replays the same run's failed tasks in place.
            outcome = engine_replay(old)
        else:
            outcome = prov.run()
    except BaseException as exc:
        store.finish_run(run_id, "error", None, f"{type(exc).__name__}: {exc}")
        raise
    store.finish_run(run_id, outcome.status, outcome.error_stage, outcome.error)
    after = _snapshot(store, settings, run_id)
    return ReplayResult(
        old_run=old["id"],
        new_run=run_id,
        status=outcome.status,
        rerun=[s for s in dag.STAGE_NAMES if s in rerun],
        changed_code=changed,
        diff=_diff(before, after),
        error_stage=outcome.error_stage,
        error=outcome.error,
    )
