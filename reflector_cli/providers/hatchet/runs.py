"""Runs nobody follows live: --no-wait submit and a later sync of what the engine did."""

from __future__ import annotations

from typing import Any

from reflector_cli.core import models as m
from reflector_cli.core.config import Settings
from reflector_cli.core.errors import UserError
from reflector_cli.core.lock import recording_lock
from reflector_cli.providers.hatchet.common import (
    SUBMITTED,
    TERMINAL,
    listing_since,
)
from reflector_cli.providers.hatchet.follow import HatchetProvider
from reflector_cli.providers.recorder import Recorder
from reflector_cli.providers.scheduler import RunOutcome
from reflector_cli.store.repo import Store

# --------------------------------------------------------------------------- no-wait runs


def submit_run(
    source: str, settings: Settings, *, force: bool = False, deliver: bool = True
) -> str:
    """Record a new run of `source` and start it on the engine without waiting.

    Returns our run id (status "submitted"; `sync_run` brings it up to date). A recording
    whose last run already ended returns that run's id unless `force`.
    """
    from reflector_cli.pipeline.runinput import new_run_id, prepare_input
    from reflector_cli.store.events import EventSink

    pipe = prepare_input(source, settings).model_copy(update={"deliver": deliver})
    store = Store(settings.db_path)
    try:
        with recording_lock(settings, pipe.recording_id):
            store.ensure_recording(pipe)
            before = store.transcript(pipe.transcript_id)
            was_ended = bool(before and before["status"] == "ended")
            latest = store.runs(1, pipe.recording_id)
            if was_ended and latest and latest[0]["status"] == "ended" and not force:
                return str(before["run_id"]) if before else str(latest[0]["id"])
            run_id = new_run_id()
            store.create_run(run_id, pipe, "hatchet", force=force)
            sink = EventSink(store, pipe.transcript_id, run_id)
            if not was_ended:
                store.set_status(pipe.transcript_id, "processing")
            sink("STATUS", {"value": "processing"})
            log = Recorder(store, settings, pipe, run_id, sink, reuse=not force)
            try:
                HatchetProvider(settings, log, no_wait=True).submit()
            except BaseException as exc:
                store.finish_run(run_id, "error", None, f"{type(exc).__name__}: {exc}")
                raise
            return run_id
    finally:
        store.close()


def sync_run(store: Store, run_id: str, settings: Settings) -> dict[str, Any]:
    """Record what the engine knows about a Hatchet run into `store` (stages, events, hooks).

    Finished runs get their final status, and a finished finalize its commit hook, exactly as
    if the submitting process had followed the run. Returns the run's engine and store status.
    """
    from reflector_cli.store.events import EventSink

    run = store.run(run_id)
    if run is None:
        raise UserError(f"{run_id}: no such run")
    run_id = str(run["id"])
    info: dict[str, Any] = {
        "run_id": run_id,
        "engine_run_id": run.get("engine_run_id"),
        "engine_status": None,
        "status": run["status"],
    }
    if run["provider"] != "hatchet" or not run.get("engine_run_id"):
        return info
    if run["status"] not in (SUBMITTED, "running"):
        return info  # already final: nothing the engine can add
    pipe = m.PipelineInput.model_validate_json(run["input"])
    try:
        lock = recording_lock(settings, pipe.recording_id)
        lock.__enter__()
    except UserError:
        return info  # a live process is following (or processing) this recording right now
    try:
        primary = run["role"] == "primary"
        sink = EventSink(store, pipe.transcript_id, run_id)
        log = Recorder(store, settings, pipe, run_id, sink, reuse=False, hooks=primary)
        prov = HatchetProvider(settings, log, since=listing_since(run))
        engine_run_id = str(run["engine_run_id"])
        state = prov.restore()
        status = prov.sync_once(engine_run_id, state)
        info["engine_status"] = status.value
        if status in TERMINAL:
            prov._apply(prov._tasks(), state)  # the run's end may have raced the listing
            _finish(store, run, pipe, sink, prov.outcome(engine_run_id, status, state))
        info["status"] = (store.run(run_id) or run)["status"]
        return info
    finally:
        lock.__exit__(None, None, None)


def _finish(
    store: Store, run: dict[str, Any], pipe: m.PipelineInput, sink: Any, outcome: RunOutcome
) -> None:
    """The end-of-run bookkeeping orchestrate does for a followed run."""
    primary = run["role"] == "primary"
    if outcome.status == "ended":
        store.finish_run(run["id"], "ended")
        return
    store.finish_run(run["id"], "error", outcome.error_stage, outcome.error)
    before = store.transcript(pipe.transcript_id)
    if primary and not (before and before["status"] == "ended"):
        store.set_status(pipe.transcript_id, "error", outcome.error_stage, outcome.error)
    sink("STATUS", {"value": "error", "stage": outcome.error_stage, "message": outcome.error})
