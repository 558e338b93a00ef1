"""Runs nobody follows live: --no-wait submit and a later sync of what the engine did."""

from __future__ import annotations

from typing import Any

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
from reflector_cli.store import lifecycle
from reflector_cli.store.lifecycle import Lifecycle
from reflector_cli.store.repo import Store

# --------------------------------------------------------------------------- no-wait runs


def submit_run(
    source: str, settings: Settings, *, force: bool = False, deliver: bool = True
) -> str:
    """Record a new run of `source` and start it on the engine without waiting.

    Returns our run id (status "submitted"; `sync_run` brings it up to date). A recording
    whose last run already ended (same settings) returns that run's id unless `force`.
    """
    from reflector_cli.pipeline.runinput import prepare_input

    pipe = prepare_input(source, settings).model_copy(update={"deliver": deliver})
    store = Store(settings.db_path)
    try:
        with recording_lock(settings, pipe.recording_id):
            before = lifecycle.prior(store, pipe)
            if before.finished(pipe) and not force:
                return str(before.result_run)
            lc = Lifecycle.begin(store, pipe, HatchetProvider.name, force=force)
            log = Recorder(store, settings, pipe, lc.run_id, lc.sink, reuse=not force)
            lc.guard(HatchetProvider(settings, log, no_wait=True).submit)
            return lc.run_id
    finally:
        store.close()


def sync_run(store: Store, run_id: str, settings: Settings) -> dict[str, Any]:
    """Record what the engine knows about a Hatchet run into `store` (stages, events, hooks).

    Finished runs get their final status, and a finished finalize its commit hook, exactly as
    if the submitting process had followed the run. Returns the run's engine and store status.
    """
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
    if run["provider"] != HatchetProvider.name or not run.get("engine_run_id"):
        return info
    if run["status"] not in (SUBMITTED, "running"):
        return info  # already final: nothing the engine can add
    lc = Lifecycle.attach(store, run)
    try:
        lock = recording_lock(settings, lc.pipe.recording_id)
        lock.__enter__()
    except UserError:
        return info  # a live process is following (or processing) this recording right now
    try:
        log = Recorder(store, settings, lc.pipe, run_id, lc.sink, reuse=False, hooks=lc.primary)
        prov = HatchetProvider(settings, log, since=listing_since(run))
        engine_run_id = str(run["engine_run_id"])
        state = prov.restore()
        status = prov.sync_once(engine_run_id, state)
        info["engine_status"] = status.value
        if status in TERMINAL:
            prov._apply(prov._tasks(), state)  # the run's end may have raced the listing
            lc.conclude(prov.outcome(engine_run_id, status, state))
        info["status"] = (store.run(run_id) or run)["status"]
        return info
    finally:
        lock.__exit__(None, None, None)
