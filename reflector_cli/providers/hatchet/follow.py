"""The submitting side: start a run on the engine and mirror its task states into the Recorder
(the provider `orchestrate` talks to)."""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from hatchet_sdk import Hatchet
from hatchet_sdk.clients.listeners.run_event_listener import (
    RunEventListenerClient,
    StepRunEventType,
)
from hatchet_sdk.clients.rest.models.v1_task_status import V1TaskStatus
from pydantic import ValidationError

from reflector_cli.core.config import Settings
from reflector_cli.pipeline import dag
from reflector_cli.pipeline.runinput import audio_seconds
from reflector_cli.providers.hatchet.common import (
    LISTING_LAG_S,
    LISTING_SLACK,
    MIN_SYNC_S,
    ORDER,
    PER_TRACK_NAMES,
    PIPELINE_WF,
    POLL_S,
    RECONCILE_S,
    RUN_KEY,
    SUBMITTED,
    TERMINAL,
    RunInput,
    client,
    failed_marker,
    list_tasks,
    listing_since,
    log,
    node_key,
    task_name,
)
from reflector_cli.providers.hatchet.mirror import Mirror, Node
from reflector_cli.providers.recorder import RECORD, Done, Event, Failed, Recorder, Started
from reflector_cli.providers.scheduler import (
    INPUT_NOT_READY,
    RunOutcome,
    conclude,
    reuse_checkpoints,
)


class _StreamRelay:
    """Receives the event streams of the run's workflow runs on a background event loop:
    put_stream lines are queued, and any task lifecycle event sets `changed`."""

    def __init__(self, hatchet: Hatchet) -> None:
        self.events = RunEventListenerClient(hatchet.config)
        self.lines: queue.Queue[str] = queue.Queue()
        self.changed = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.watched: set[str] = set()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def watch(self, workflow_run_id: str) -> None:
        if workflow_run_id in self.watched:
            return
        self.watched.add(workflow_run_id)
        asyncio.run_coroutine_threadsafe(self._pump(workflow_run_id), self.loop)

    async def _pump(self, workflow_run_id: str) -> None:
        try:
            async for event in self.events.stream(workflow_run_id):
                if event.type == StepRunEventType.STEP_RUN_EVENT_TYPE_STREAM:
                    self.lines.put(event.payload)
                else:
                    self.changed.set()
        except Exception as exc:  # noqa: BLE001 - best effort: the follower reconciles anyway
            log.debug("stream %s closed: %s", workflow_run_id, exc)

    def drain(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            try:
                raw = self.lines.get_nowait()
            except queue.Empty:
                return out
            try:
                out.append(json.loads(raw))
            except ValueError:
                continue

    def close(self) -> None:
        for t in asyncio.all_tasks(self.loop):
            self.loop.call_soon_threadsafe(t.cancel)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


class HatchetProvider:
    name = "hatchet"

    def __init__(
        self,
        settings: Settings,
        log: Recorder,
        *,
        rerun: Iterable[str] = (),
        no_wait: bool = False,
        hatchet: Hatchet | None = None,
        since: datetime | None = None,
    ) -> None:
        self.settings = settings
        self.log = log
        # Stages that must execute even when a checkpoint matches (see reuse_checkpoints).
        self.rerun = set(rerun)
        self.no_wait = no_wait
        self._hatchet = hatchet
        self.engine_run_id: str | None = None
        # Lower bound for listing the run's tasks (the engine's list API needs a window).
        self._since = since or datetime.now(UTC) - LISTING_SLACK
        # The RUN_KEY the engine's tasks carry: an engine replay keeps the replayed run's tag.
        self._tag = log.run_id
        # Engine replay: retry_count of each task before the replay (see replay_engine_run).
        self._baseline: dict[str, int] | None = None
        # Engine replay: the tasks it will run again (the failed ones and their descendants).
        self._replaying: set[str] = set()

    @property
    def hatchet(self) -> Hatchet:
        if self._hatchet is None:
            self._hatchet = client()
        return self._hatchet

    def submit(self, state: Mirror | None = None) -> str:
        """Start `reflector-pipeline` for this run; returns (and stores) the engine run id.

        `state` holds the checkpoints reused for this run (see `reuse_checkpoints`).
        """
        pipe = self.log.pipe
        state = state if state is not None else self.reuse_checkpoints()
        reused = {
            node_key(name, track): state.output(name, track).model_dump(mode="json")
            for (name, track), node in state.nodes.items()
            if node.final
        }
        from reflector_cli.providers.hatchet.presence import ready_for_run
        from reflector_cli.providers.hatchet.workflows import build_workflows

        workflows = list(build_workflows(self.hatchet, self.settings))
        ready_for_run(self.hatchet, self.settings, workflows, wait=not self.no_wait)
        wf = self.hatchet.stubs.workflow(name=PIPELINE_WF, input_validator=RunInput)
        inp = RunInput(
            pipeline=pipe,
            run_id=self.log.run_id,
            audio_s=audio_seconds(state.outputs, pipe),
            reused=reused,
        )
        ref = wf.run(inp, wait_for_result=False, additional_metadata={RUN_KEY: self.log.run_id})
        self.engine_run_id = ref.workflow_run_id
        fields: dict[str, Any] = {"engine_run_id": self.engine_run_id}
        if self.no_wait:
            # Nobody follows the run: `sync_run` records it later. "submitted" (not "running")
            # keeps the next local invocation from marking it interrupted.
            fields["status"] = SUBMITTED
        self.log.store.set_run(self.log.run_id, **fields)
        return self.engine_run_id

    def run(self) -> RunOutcome:
        state = self.reuse_checkpoints()
        engine_run_id = self.submit(state)
        if self.no_wait:
            return RunOutcome(SUBMITTED, outputs={"engine_run_id": engine_run_id})
        return self.follow(engine_run_id, state)

    def reuse_checkpoints(self) -> Mirror:
        """Record as reused every stage whose checkpoint from an earlier run still matches
        (same input, code version, artifacts present), in DAG order; the engine's tasks for
        them return that output instead of running. A re-run after a failure thus resumes
        where the last one stopped."""
        state = Mirror()
        for (name, track), out in reuse_checkpoints(self.log, self.rerun):
            state.settle(name, track, out)
        return state

    # ------------------------------------------------------------------ following a run

    def follow(self, engine_run_id: str, state: Mirror | None = None) -> RunOutcome:
        """Mirror the engine's task states into the Recorder until the run is terminal."""
        relay = _StreamRelay(self.hatchet)
        relay.watch(engine_run_id)
        state = state or Mirror()
        last = -RECONCILE_S
        try:
            while True:
                now = time.monotonic()
                due = now - last >= RECONCILE_S
                if due or (relay.changed.is_set() and now - last >= MIN_SYNC_S):
                    # Pushed events say when to look; the REST listing stays the record.
                    relay.changed.clear()
                    last = now
                    status = self.sync_once(engine_run_id, state, relay)
                    if status in TERMINAL:
                        # One last look: the run's end may have raced the task listing.
                        self._apply(self._tasks(), state)
                        time.sleep(POLL_S)
                        self._forward(relay, state)
                        break
                self._forward(relay, state)
                if relay.changed.is_set():  # a change is pending until MIN_SYNC_S has passed
                    time.sleep(max(0.0, min(POLL_S, last + MIN_SYNC_S - time.monotonic())))
                else:
                    relay.changed.wait(POLL_S)
        finally:
            relay.close()
        log.info("run %s: %d stage records streamed by workers", self.log.run_id, state.streamed)
        return self.outcome(engine_run_id, status, state)

    def sync_once(
        self, engine_run_id: str, state: Mirror, relay: _StreamRelay | None = None
    ) -> V1TaskStatus:
        """One look at the engine: record what changed since `state`; returns the run status."""
        status = self._settled_status(engine_run_id, state)
        state.run_over = status in TERMINAL
        rows = self._tasks()
        if relay is not None:
            for r in rows:
                relay.watch(r.workflow_run_external_id)
        self._apply(rows, state)
        if relay is not None:
            self._forward(relay, state)
        return status

    def _settled_status(self, engine_run_id: str, state: Mirror) -> V1TaskStatus:
        """The run's status, terminal only once the engine's own bookkeeping agrees.

        The listing (the engine's analytics tables) marks a task FAILED when the engine could
        not deliver it to a worker (e.g. one just killed) and then re-sends it; for a moment
        the whole run reads FAILED. The run details come from the engine's core tables, where
        that task is queued again, so a terminal listing counts only when they say done too
        and agree on the status (a lagging listing gets LISTING_LAG_S to catch up).
        """
        listed = self.hatchet.runs.get_status(engine_run_id)
        if listed not in TERMINAL:
            state.disagree_since = None
            state.replay_gap_since = None
            return listed
        if self._replay_gap(state):
            return V1TaskStatus.RUNNING
        details = self.hatchet.runs.get_details(engine_run_id)
        core = details.status.to_v1_task_status() if details.done else None
        if core == listed:
            state.disagree_since = None
            return listed
        now = time.monotonic()
        state.disagree_since = state.disagree_since or now
        if core in TERMINAL and now - state.disagree_since > LISTING_LAG_S:
            return core
        return V1TaskStatus.RUNNING

    def _replay_gap(self, state: Mirror) -> bool:
        """During an engine replay, whether a terminal status may be a gap between two steps.

        The engine queues a replayed task's descendants again only once that task completes;
        until then they keep the old run's CANCELLED. Between a replayed task's completion and
        its children's new attempt, every task of the run is terminal, and the listing and the
        core tables both read the run as CANCELLED. The run is over only once every replayed
        task has its new attempt (retry_count past the baseline; a descendant the engine
        cancels again gets one too). Listed after the terminal status and before the core
        details (`_settled_status`), so a step queued in between cannot be missed. Bounded by
        LISTING_LAG_S, in case the engine left a task out of the replay.
        """
        if not self._replaying or self._baseline is None:
            return False
        now = {r.metadata.id: int(r.retry_count or 0) for r in self._listing()}
        before = self._baseline
        waiting = sorted(i for i in self._replaying if now.get(i, -1) <= before[i])
        if not waiting:
            state.replay_gap_since = None
            return False
        t = time.monotonic()
        state.replay_gap_since = state.replay_gap_since or t
        if t - state.replay_gap_since <= LISTING_LAG_S:
            log.debug("replay: run reads terminal, tasks %s not rerun yet: waiting", waiting)
            return True
        log.warning("replay: tasks %s never ran again; taking the run's status", waiting)
        return False

    def outcome(self, engine_run_id: str, status: V1TaskStatus, state: Mirror) -> RunOutcome:
        fatal = next(((n, e) for n, e in state.failures if dag.stage(n).critical), None)
        completed = status == V1TaskStatus.COMPLETED
        unfinished = None if completed else f"engine run {engine_run_id}: {status.value}"
        return conclude(fatal, state.outputs, unfinished)

    def reattach(self, run: dict[str, Any]) -> RunOutcome:
        """Follow `run`'s engine run to its end, starting from what was already recorded.

        For a run whose submitter was killed, or that was submitted with --no-wait: the
        engine kept going, so there is nothing to start again.
        """
        engine_run_id = str(run["engine_run_id"])
        self._since = listing_since(run)
        self.engine_run_id = engine_run_id
        self.log.store.set_run(self.log.run_id, status="running")
        return self.follow(engine_run_id, self.restore())

    def replay_failed(self, old_run: dict[str, Any]) -> RunOutcome:
        """Version-locked replay on the engine: it re-runs `old_run`'s failed tasks in place."""
        from reflector_cli.providers.hatchet.replay import replay_engine_run

        return replay_engine_run(self, old_run)

    def restore(self) -> Mirror:
        """What an earlier process already recorded for this run (for `sync_run`)."""
        state = Mirror()
        for row in self.log.store.stage_runs(self.log.run_id):
            name, track = row["stage"], row["track"]
            if name not in dag.BY_NAME:
                continue
            node = state.nodes.setdefault((name, track), Node())
            attempts = int(row["attempts"] or 0)
            if row["status"] == "done" and row["output"]:
                out = dag.stage(name).output_model.model_validate_json(row["output"])
                state.settle(name, track, out)
            elif row["status"] == "failed":
                state.failures.append((name, row["error"] or "failed"))
                node.final = True
            elif row["status"] == "retrying":
                node.logged = 2 * attempts
            else:  # running
                node.logged = max(0, 2 * attempts - 1)
        return state

    def _listing(self) -> list[Any]:
        return list_tasks(self.hatchet, self._tag, self._since)

    def _tasks(self) -> list[Any]:
        rows = self._listing()
        if self._baseline is None:
            return rows
        out = []
        for r in rows:
            before = self._baseline.get(r.metadata.id)
            if before is None:
                out.append(r)  # a task the replay created
            elif int(r.retry_count or 0) > before:
                # A replay bumps retry_count once: count this run's attempts from zero.
                out.append(r.model_copy(update={"retry_count": int(r.retry_count) - before - 1}))
            # else: not replayed (yet): its outcome is the old run's, recorded as reused
        return out

    def _forward(self, relay: _StreamRelay, state: Mirror) -> None:
        """Apply what the workers streamed: events, and their stage records (not during an
        engine replay: the engine counts a replayed task's attempts on from the old run's)."""
        for line in relay.drain():
            try:
                rec = RECORD.validate_python(line)
            except ValidationError:
                continue
            if isinstance(rec, Event):
                self.log.apply(rec)
            elif self._baseline is None:
                state.take(self.log, rec)

    def _apply(self, rows: list[Any], state: Mirror) -> None:
        keyed = []
        for r in rows:
            name = task_name(r)
            if name not in dag.BY_NAME:
                continue  # the fan-out task is plumbing, not a stage
            meta = r.additional_metadata or {}
            track = int(meta["track"]) if name in PER_TRACK_NAMES and "track" in meta else None
            keyed.append(((ORDER[name], -1 if track is None else track), name, track, r))
        for _, name, track, r in sorted(keyed, key=lambda k: k[0]):
            node = state.nodes.setdefault((name, track), Node())
            if not node.final:
                self._advance(name, track, r, node, state)

    def _advance(self, name: str, track: int | None, r: Any, node: Node, state: Mirror) -> None:
        retries = int(r.retry_count or 0)
        started = r.status in (V1TaskStatus.RUNNING, V1TaskStatus.COMPLETED, V1TaskStatus.FAILED)
        if r.status == V1TaskStatus.CANCELLED and r.started_at is None and retries == 0:
            return  # never ran (a parent failed): nothing to record
        # Events so far: start1, fail1, ..., start(k+1) when the current attempt has started.
        target = 2 * retries + (1 if started or r.status == V1TaskStatus.CANCELLED else 0)
        s = dag.stage(name)
        while node.logged < target:
            n = node.logged // 2 + 1  # the attempt this step records
            if node.logged % 2 == 0:
                try:
                    inp = s.build(self.log.pipe, state.outputs, track)
                except INPUT_NOT_READY:
                    return  # a parent's output not seen yet (e.g. a retried track): next poll
                payload = inp.model_dump(mode="json")
                self.log.apply(Started(stage=name, track=track, attempt=n, input=payload))
            else:
                err = _one_line(r.error_message or f"attempt {n} failed")
                self.log.apply(Failed(stage=name, track=track, attempt=n, error=err, final=False))
            node.logged += 1
        # The last attempt (a worker's streamed start may have counted further).
        last = max(1, (node.logged + 1) // 2, self.log.attempts(name, track))
        marker = failed_marker(r.output) if r.status == V1TaskStatus.COMPLETED else None
        if marker is not None:
            # A non-critical stage failed for good; its task completed so its children run.
            err = _one_line(marker)
            self.log.apply(Failed(stage=name, track=track, attempt=last, error=err, final=True))
            state.failures.append((name, marker))
            node.final = True
        elif r.status == V1TaskStatus.COMPLETED:
            done = Done(stage=name, track=track, attempt=last, output=r.output or {})
            state.settle(name, track, self.log.apply(done))
        elif r.status in (V1TaskStatus.FAILED, V1TaskStatus.CANCELLED):
            # Until the run is over a FAILED listing may be followed by another attempt: the
            # engine lists it between retries, and after a failed delivery to a worker, which
            # it re-sends (bumping retry_count) without spending the stage's retries.
            if not state.run_over:
                return
            err = _one_line(r.error_message or f"task {r.status.value.lower()}")
            self.log.apply(Failed(stage=name, track=track, attempt=last, error=err, final=True))
            state.failures.append((name, err))
            node.final = True


def _one_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    # Engine errors carry a traceback; its last line names the exception.
    return (lines[-1] if lines else text)[:500]
