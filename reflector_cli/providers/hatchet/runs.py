"""Runs nobody follows live: engine replay of failed tasks, --no-wait submit and later sync."""

from __future__ import annotations

import time
from typing import Any

from hatchet_sdk.clients.rest.models.v1_task_status import V1TaskStatus

from reflector_cli import dag
from reflector_cli import models as m
from reflector_cli.config import Settings
from reflector_cli.errors import UserError
from reflector_cli.providers.hatchet.common import (
    ORDER,
    POLL_S,
    SUBMITTED,
    TERMINAL,
    list_tasks,
    listing_since,
    task_name,
)
from reflector_cli.providers.hatchet.follow import HatchetProvider, Mirror
from reflector_cli.providers.local import RunOutcome
from reflector_cli.runlog import RunLog
from reflector_cli.store.repo import Store


def replay_engine_run(prov: HatchetProvider, old_run: dict[str, Any]) -> RunOutcome:
    """Replay `old_run`'s engine run in place and follow it as run `prov.log.run_id`.

    The engine re-executes the failed tasks and their descendants (same task ids, retry_count
    bumped by one); every other stage is recorded as reused from the old run's checkpoints.
    """
    log = prov.log
    engine_run_id = old_run.get("engine_run_id")
    if not engine_run_id:
        raise UserError(f"run {old_run['id']}: no engine run id recorded; pass --force")
    prov._since = listing_since(old_run)
    prov._tag = str(old_run["id"])
    rows = list_tasks(prov.hatchet, prov._tag, prov._since)
    failed = [r for r in rows if r.status == V1TaskStatus.FAILED]
    if not failed:
        raise UserError(
            f"run {old_run['id']}: no failed task in engine run {engine_run_id} to replay; "
            "pass --force for a fresh run"
        )
    replayed = {task_name(r) for r in failed}
    for name in list(replayed):
        replayed |= dag.descendants(name) if name in dag.BY_NAME else set()
    state = _reuse_old(log, str(old_run["id"]), replayed)
    prov._baseline = {r.metadata.id: int(r.retry_count or 0) for r in rows}
    log.store.set_run(log.run_id, engine_run_id=engine_run_id)
    from hatchet_sdk.features.runs import BulkCancelReplayOpts

    prov.hatchet.runs.bulk_replay(BulkCancelReplayOpts(ids=[r.metadata.id for r in failed]))
    # The run's status stays terminal until the engine takes the replay: wait for that first.
    ids = {r.metadata.id for r in failed}
    deadline = time.monotonic() + 60
    while not ids & {r.metadata.id for r in prov._tasks()}:
        if time.monotonic() > deadline:
            raise RuntimeError(f"engine run {engine_run_id}: replay not taken within 60 s")
        time.sleep(POLL_S)
    return prov.follow(str(engine_run_id), state)


def _reuse_old(log: RunLog, old_run_id: str, replayed: set[str]) -> Mirror:
    """Record the old run's finished stages outside `replayed` as reused; the mirror's start."""
    state = Mirror()
    rows = [
        r
        for r in log.store.stage_runs(old_run_id)
        if r["status"] == "done" and r["output"] and r["stage"] not in replayed
    ]
    log.pinned = {(r["stage"], r["track"]): r for r in rows}
    for r in sorted(rows, key=lambda r: (ORDER[r["stage"]], r["track"] or -1)):
        name, track = r["stage"], r["track"]
        out = log.try_reuse(name, track, dag.stage(name).build(log.pipe, state.outputs, track))
        assert out is not None  # pinned: try_reuse returns the old run's output as is
        state.settle(name, track, out)
    return state


# --------------------------------------------------------------------------- no-wait runs


def submit_run(
    source: str, settings: Settings, *, force: bool = False, deliver: bool = True
) -> str:
    """Record a new run of `source` and start it on the engine without waiting.

    Returns our run id (status "submitted"; `sync_run` brings it up to date). A recording
    whose last run already ended returns that run's id unless `force`.
    """
    from reflector_cli.orchestrate import recording_lock
    from reflector_cli.pipeline import EventSink, new_run_id, prepare_input

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
            log = RunLog(store, settings, pipe, run_id, sink, reuse=not force)
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
    from reflector_cli.orchestrate import recording_lock
    from reflector_cli.pipeline import EventSink

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
        log = RunLog(store, settings, pipe, run_id, sink, reuse=False, hooks=primary)
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
