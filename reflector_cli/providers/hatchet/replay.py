"""Engine replay of a stored run's failed tasks, in place, followed as a new run of ours."""

from __future__ import annotations

import time
from typing import Any

from hatchet_sdk.clients.rest.models.v1_task_status import V1TaskStatus

from reflector_cli.core.errors import UserError
from reflector_cli.pipeline import dag
from reflector_cli.providers.hatchet.common import (
    ORDER,
    POLL_S,
    list_tasks,
    listing_since,
    task_name,
)
from reflector_cli.providers.hatchet.mirror import Mirror
from reflector_cli.providers.recorder import Recorder
from reflector_cli.providers.scheduler import RunOutcome


def replay_engine_run(prov: Any, old_run: dict[str, Any]) -> RunOutcome:
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
    # What the engine runs again: the failed tasks and their descendants, which a failed parent
    # left CANCELLED (see HatchetProvider._replay_gap).
    stopped = (V1TaskStatus.FAILED, V1TaskStatus.CANCELLED)
    prov._replaying = {
        r.metadata.id for r in rows if r.status in stopped and task_name(r) in replayed
    } | {r.metadata.id for r in failed}
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


def _reuse_old(log: Recorder, old_run_id: str, replayed: set[str]) -> Mirror:
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
