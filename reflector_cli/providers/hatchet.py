"""The Hatchet provider: the DAG from dag.py as Hatchet workflows, a worker, a submitter that
follows the run (or, with no_wait, `submit_run` + `sync_run`), and `hatchet_checks` for doctor.

`reflector-pipeline` holds the non-per-track stages; a `tracks` task spawns one
`reflector-track` child run per track (the per-track stages). This is the only module that
imports hatchet_sdk; task bodies only rebuild stage inputs and call execute.run_stage.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from hatchet_sdk import Context, DurableContext, Hatchet, NonRetryableException
from hatchet_sdk.clients.rest.models.v1_task_status import V1TaskStatus
from pydantic import BaseModel, ValidationError

from reflector_cli import dag
from reflector_cli import models as m
from reflector_cli.config import Settings
from reflector_cli.errors import UserError
from reflector_cli.execute import asr_options, run_stage, warm_up
from reflector_cli.providers.local import RunOutcome
from reflector_cli.runlog import RunLog
from reflector_cli.store.repo import Store

PIPELINE_WF = "reflector-pipeline"
TRACK_WF = "reflector-track"
FANOUT = "tracks"  # the task between get_recording and the stages needing per-track outputs
SUBMITTED = "submitted"  # run status while nobody follows it (--no-wait)
RUN_KEY = "reflector_run"  # additional-metadata key tying every task of a run together
# Time a task may wait for a free worker: long, so a restarted worker still picks it up.
SCHEDULE_TIMEOUT = timedelta(hours=12)
POLL_S = 0.2
# How long a terminal task listing may disagree with the core run details before the core wins.
LISTING_LAG_S = 30.0
PROGRESS_EVERY_S = 0.5
# Engine slots per heavy slot. The engine's scheduler sees slots a task frees only at its next
# slot refresh (about once a second), so a worker whose engine slots are all taken makes every
# next task wait ~1 s. Registering spare slots keeps tasks flowing; CPU use is bounded in the
# worker by a semaphore sized to the requested slots instead (see _HeavyGate).
ENGINE_SLOTS_PER_SLOT = 4
ENGINE_SLOTS_EXTRA = 4
GATE_REFRESH_S = 20

log = logging.getLogger("reflector.hatchet")


class RunInput(m.Model):
    """Workflow input: the pipeline input plus what the engine needs to size timeouts."""

    pipeline: m.PipelineInput
    run_id: str
    audio_s: float | None = None
    # Checkpoints of earlier runs the submitter matched (node key -> output): returned as is.
    reused: dict[str, dict[str, Any]] = {}


def node_key(name: str, track: int | None) -> str:
    return name if track is None else f"{name}#{track}"


class TrackInput(m.Model):
    """Child workflow input: one track, with the outputs of its non-per-track ancestors."""

    pipeline: m.PipelineInput
    run_id: str
    audio_s: float | None = None
    track: int
    upstream: dict[str, dict[str, Any]]
    reused: dict[str, dict[str, Any]] = {}


class FanoutOut(BaseModel):
    """Per-track stage outputs (JSON), each list ordered by track index."""

    outputs: dict[str, list[dict[str, Any]]]


def client() -> Hatchet:
    """A client configured from HATCHET_CLIENT_* (built lazily: never at import time)."""
    return Hatchet()


# --------------------------------------------------------------------------- workflow generation

PER_TRACK = tuple(s for s in dag.STAGES if s.per_track)
TOP = tuple(s for s in dag.STAGES if not s.per_track)
PER_TRACK_NAMES = frozenset(s.name for s in PER_TRACK)
# Non-per-track outputs the per-track stages read; the fan-out task waits for them.
FANOUT_PARENTS = tuple(
    dict.fromkeys(p for s in PER_TRACK for p in s.parents if p not in PER_TRACK_NAMES)
)


def _timeout(stage: dag.Stage, audio_s: float | None) -> timedelta:
    return timedelta(seconds=stage.timeout_s(audio_s))


def _fanout_timeout(audio_s: float | None, n_tracks: int) -> timedelta:
    """Worst case: every track's stages run one after another, each using every retry."""
    per_track = sum(s.timeout_s(audio_s) * (s.retries + 1) for s in PER_TRACK)
    return timedelta(seconds=per_track * max(1, n_tracks) + 60)


class _HeavyGate:
    """Bounds how many non-light stages run at once in this worker process.

    The engine may hand this worker more tasks than it has CPU for (spare engine slots); they
    wait here, on a local semaphore, instead of in the engine's queue.
    """

    def __init__(self) -> None:
        self.sem: threading.BoundedSemaphore | None = None

    def configure(self, slots: int) -> None:
        self.sem = threading.BoundedSemaphore(max(1, slots))

    def acquire(self, ctx: Context) -> None:
        if self.sem is None:
            return
        # The engine's execution timeout runs while we wait: push it back as time passes.
        while not self.sem.acquire(timeout=GATE_REFRESH_S):
            ctx.refresh_timeout(timedelta(seconds=GATE_REFRESH_S))

    def release(self) -> None:
        if self.sem is not None:
            self.sem.release()


_GATE = _HeavyGate()


def engine_slots(slots: int) -> int:
    """Engine slots to register for a worker that runs `slots` heavy stages at once."""
    return max(1, slots) * ENGINE_SLOTS_PER_SLOT + ENGINE_SLOTS_EXTRA


def _extend(ctx: Context, registered: timedelta, wanted: timedelta) -> None:
    # Registered timeouts assume no audio; a long meeting gets its declared budget at start.
    # The engine adds the increment to the current deadline.
    if wanted > registered:
        ctx.refresh_timeout(wanted - registered)


def _emitter(ctx: Context, name: str, track: int | None) -> Callable[[str, dict[str, Any]], None]:
    last = [0.0]

    def emit(event_type: str, data: dict[str, Any]) -> None:
        # Each push is a blocking RPC in the stage's thread: progress is thinned to 2 per second.
        if event_type == "PROGRESS":
            now = time.monotonic()
            if now - last[0] < PROGRESS_EVERY_S:
                return
            last[0] = now
        line = {"stage": name, "track": track, "type": event_type, "data": data}
        ctx.put_stream(json.dumps(line, default=str))

    return emit


def _call(
    stage: dag.Stage,
    inp: BaseModel,
    settings: Settings,
    ctx: Context,
    track: int | None,
    input: RunInput | TrackInput,
) -> BaseModel:
    done = input.reused.get(node_key(stage.name, track))
    if done is not None:
        log.info("reuse %s track=%s", stage.name, track)
        return stage.output_model.model_validate(done)
    audio_s = input.audio_s
    log.info("take %s track=%s attempt=%d", stage.name, track, ctx.attempt_number)
    _extend(ctx, _timeout(stage, None), _timeout(stage, audio_s))
    if not stage.light:
        _GATE.acquire(ctx)
    try:
        out = run_stage(
            stage.name,
            inp.model_dump(mode="json"),
            settings,
            track=track,
            attempt=ctx.attempt_number,
            emit_fn=_emitter(ctx, stage.name, track),
        )
    except UserError as exc:
        # Bad input never gets better: tell the engine not to retry.
        raise NonRetryableException(str(exc)) from exc
    finally:
        if not stage.light:
            _GATE.release()
    log.info("done %s track=%s", stage.name, track)
    return stage.output_model.model_validate(out)


def _typed(
    fn: Callable[..., Any], name: str, inp: type, out: type, ctx: type = Context
) -> Callable[..., Any]:
    # The SDK reads the return annotation to validate parent outputs (ctx.task_output).
    fn.__name__ = fn.__qualname__ = name
    fn.__annotations__ = {"input": inp, "ctx": ctx, "return": out}
    return fn


def _retry_opts(stage_retries: int, settings: Settings) -> dict[str, Any]:
    opts: dict[str, Any] = {"retries": stage_retries, "schedule_timeout": SCHEDULE_TIMEOUT}
    if settings.retry_backoff_s > 0:
        # The engine waits factor**k seconds before retry k (capped).
        opts.update(backoff_factor=2.0, backoff_max_seconds=60)
    return opts


def build_workflows(hatchet: Hatchet, settings: Settings) -> tuple[Any, Any]:
    """Generate (`reflector-pipeline`, `reflector-track`) from the DAG declaration."""
    track_wf = hatchet.workflow(name=TRACK_WF, input_validator=TrackInput)
    track_tasks: dict[str, Any] = {}
    for s in PER_TRACK:
        track_tasks[s.name] = _track_task(track_wf, track_tasks, s, settings)

    wf = hatchet.workflow(name=PIPELINE_WF, input_validator=RunInput)
    tasks: dict[str, Any] = {}
    for s in TOP:
        if s.name not in tasks and FANOUT not in tasks and _needs_fanout(s):
            tasks[FANOUT] = _fanout_task(wf, tasks, track_wf, settings)
        tasks[s.name] = _top_task(wf, tasks, s, settings)
    return wf, track_wf


def _needs_fanout(s: dag.Stage) -> bool:
    return any(p in PER_TRACK_NAMES for p in s.parents)


def _top_task(wf: Any, tasks: dict[str, Any], s: dag.Stage, settings: Settings) -> Any:
    parents = list(dict.fromkeys(FANOUT if p in PER_TRACK_NAMES else p for p in s.parents))
    registered = _timeout(s, None)
    fanout = tasks.get(FANOUT)

    def body(input: RunInput, ctx: Context) -> BaseModel:
        outputs: dict[str, Any] = {}
        for p in s.parents:
            if p in PER_TRACK_NAMES:
                per = ctx.task_output(fanout).outputs[p]
                outputs[p] = [dag.stage(p).output_model.model_validate(o) for o in per]
            else:
                outputs[p] = ctx.task_output(tasks[p])
        return _call(s, s.build(input.pipeline, outputs, None), settings, ctx, None, input)

    fn = _typed(body, s.name, RunInput, s.output_model)
    return wf.task(
        name=s.name,
        parents=[tasks[p] for p in parents],
        execution_timeout=registered,
        **_retry_opts(s.retries, settings),
    )(fn)


def _track_task(wf: Any, tasks: dict[str, Any], s: dag.Stage, settings: Settings) -> Any:
    registered = _timeout(s, None)

    def body(input: TrackInput, ctx: Context) -> BaseModel:
        outputs: dict[str, Any] = {}
        for p in s.parents:
            if p in PER_TRACK_NAMES:
                # Only this track's slot is filled; build() indexes by track.
                slots: list[Any] = [None] * (input.track + 1)
                slots[input.track] = ctx.task_output(tasks[p])
                outputs[p] = slots
            else:
                outputs[p] = dag.stage(p).output_model.model_validate(input.upstream[p])
        inp = s.build(input.pipeline, outputs, input.track)
        return _call(s, inp, settings, ctx, input.track, input)

    fn = _typed(body, s.name, TrackInput, s.output_model)
    return wf.task(
        name=s.name,
        parents=[tasks[p] for p in s.parents if p in PER_TRACK_NAMES],
        execution_timeout=registered,
        **_retry_opts(s.retries, settings),
    )(fn)


def _reused_track(reused: dict[str, dict[str, Any]], track: int) -> dict[str, Any] | None:
    """Every per-track stage's output for `track` when all were reused, else None."""
    outs = {s.name: reused.get(node_key(s.name, track)) for s in PER_TRACK}
    return None if any(o is None for o in outs.values()) else outs


def _fanout_task(wf: Any, tasks: dict[str, Any], track_wf: Any, settings: Settings) -> Any:
    registered = timedelta(minutes=10)

    async def body(input: RunInput, ctx: DurableContext) -> FanoutOut:
        upstream = {p: ctx.task_output(tasks[p]) for p in FANOUT_PARENTS}
        rec = upstream["get_recording"]
        assert isinstance(rec, m.RecordingOut)
        n = len(rec.tracks)
        _extend(ctx, registered, _fanout_timeout(input.audio_s, n))
        up_json = {k: v.model_dump(mode="json") for k, v in upstream.items()}
        # A track whose every stage was reused needs no child run at all.
        results: list[Any] = [_reused_track(input.reused, i) for i in range(n)]
        todo = [i for i in range(n) if results[i] is None]
        items = [
            track_wf.create_bulk_run_item(
                input=TrackInput(
                    pipeline=input.pipeline,
                    run_id=input.run_id,
                    audio_s=input.audio_s,
                    track=i,
                    upstream=up_json,
                    reused=input.reused,
                ),
                key=f"track-{i}",
                additional_metadata={RUN_KEY: input.run_id, "track": str(i)},
            )
            for i in todo
        ]
        log.info("fan out %d of %d track runs for %s", len(todo), n, input.run_id)
        ran = await track_wf.aio_run_many(items, return_exceptions=True) if items else []
        errors = [r for r in ran if isinstance(r, BaseException)]
        if errors:
            raise RuntimeError(f"{len(errors)} of {n} track runs failed: {errors[0]}")
        for i, r in zip(todo, ran, strict=True):
            results[i] = r
        outputs = {s.name: [dict(r[s.name]) for r in results] for s in PER_TRACK}
        return FanoutOut(outputs=outputs)

    fn = _typed(body, FANOUT, RunInput, FanoutOut, DurableContext)
    # A durable task waits in the durable slot pool, so a 1-slot worker still runs the
    # children (a plain task would hold the only slot while waiting: deadlock).
    # No retries: the children carry their own, and a failed child stays failed.
    return wf.durable_task(
        name=FANOUT,
        parents=[tasks[p] for p in FANOUT_PARENTS],
        execution_timeout=registered,
        retries=0,
        schedule_timeout=SCHEDULE_TIMEOUT,
    )(fn)


# --------------------------------------------------------------------------- worker


def run_worker(settings: Settings, slots: int = 1, name: str = "reflector-worker") -> None:
    """Register both workflows and process tasks until stopped (blocks; main thread only)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    t0 = time.monotonic()
    warm_up(asr_options(settings))
    log.info("whisper model %s loaded in %.1fs", settings.model, time.monotonic() - t0)
    hatchet = client()
    cfg = hatchet.config
    log.info(
        "worker %s: engine %s (api %s), namespace %r, %d slots, data dir %s",
        name,
        cfg.host_port,
        cfg.server_url,
        cfg.namespace,
        slots,
        settings.data_dir,
    )
    if cfg.healthcheck.enabled:
        log.info("health check on http://127.0.0.1:%d/health", cfg.healthcheck.port)
    _GATE.configure(slots)
    wf, track_wf = build_workflows(hatchet, settings)
    hatchet.worker(name, slots=engine_slots(slots), workflows=[wf, track_wf]).start()


# --------------------------------------------------------------------------- submitter

_ORDER = {s.name: i for i, s in enumerate(dag.STAGES)}
_TERMINAL = {V1TaskStatus.COMPLETED, V1TaskStatus.FAILED, V1TaskStatus.CANCELLED}


def _audio_seconds(pipe: m.PipelineInput) -> float | None:
    """Meeting length from the source folder, so the engine can size timeouts."""
    if pipe.source_kind != "folder":
        return None
    from pathlib import Path

    from reflector_cli.sources.folder import scan_folder

    scan = scan_folder(Path(pipe.source), include_screen_audio=pipe.include_screen_audio)
    return max((t.offset_s + t.duration_s for t in scan.tracks), default=0.0)


def _list_tasks(hatchet: Hatchet, run_id: str, since: datetime) -> list[Any]:
    """Every task (pipeline and track runs) tagged with our run id."""
    res = hatchet.runs.list(
        since=since, only_tasks=True, additional_metadata={RUN_KEY: run_id}, limit=1000
    )
    return list(res.rows or [])


def _task_name(row: Any) -> str:
    return str(row.action_id or row.display_name or "").rsplit(":", 1)[-1]


def task_timings(run_id: str, since: datetime, hatchet: Hatchet | None = None) -> list[dict]:
    """Engine timestamps of a run's tasks (for overhead measurements)."""
    out = []
    for r in _list_tasks(hatchet or client(), run_id, since):
        meta = r.additional_metadata or {}
        out.append(
            {
                "task": _task_name(r),
                "track": int(meta["track"]) if "track" in meta else None,
                "status": r.status.value,
                "retry_count": r.retry_count or 0,
                "created_at": r.created_at,
                "started_at": r.started_at,
                "finished_at": r.finished_at,
            }
        )
    return out


class _Node:
    """What has been recorded in the RunLog for one (stage, track)."""

    def __init__(self) -> None:
        self.logged = 0  # events recorded: start1, fail1, start2, ... (see _target)
        self.final = False


class _StreamRelay:
    """Receives put_stream lines of the run's workflow runs on a background event loop."""

    def __init__(self, hatchet: Hatchet) -> None:
        self.hatchet = hatchet
        self.lines: queue.Queue[str] = queue.Queue()
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
            async for chunk in self.hatchet.runs.subscribe_to_stream(workflow_run_id):
                self.lines.put(chunk)
        except Exception as exc:  # noqa: BLE001 - progress is best effort; lifecycle is polled
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
        log: RunLog,
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
        self._since = since or datetime.now(UTC) - timedelta(minutes=5)
        # The RUN_KEY the engine's tasks carry: an engine replay keeps the replayed run's tag.
        self._tag = log.run_id
        # Engine replay: retry_count of each task before the replay (see replay_engine_run).
        self._baseline: dict[str, int] | None = None

    @property
    def hatchet(self) -> Hatchet:
        if self._hatchet is None:
            self._hatchet = client()
        return self._hatchet

    def submit(self, state: _Mirror | None = None) -> str:
        """Start `reflector-pipeline` for this run; returns (and stores) the engine run id.

        `state` holds the checkpoints reused for this run (see `reuse_checkpoints`).
        """
        pipe = self.log.pipe
        state = state if state is not None else self.reuse_checkpoints()
        reused = {
            node_key(name, track): _output_of(state.outputs, name, track).model_dump(mode="json")
            for (name, track), node in state.nodes.items()
            if node.final
        }
        wf = self.hatchet.stubs.workflow(name=PIPELINE_WF, input_validator=RunInput)
        inp = RunInput(
            pipeline=pipe, run_id=self.log.run_id, audio_s=_audio_seconds(pipe), reused=reused
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

    def reuse_checkpoints(self) -> _Mirror:
        """Record as reused every stage whose checkpoint from an earlier run still matches
        (same input, code version, artifacts present), in DAG order as the local provider
        does; the engine's tasks for them return that output instead of running. A re-run
        after a failure thus resumes where the last one stopped."""
        state = _Mirror()
        n_tracks = 0
        for s in dag.STAGES:
            for track in range(n_tracks) if s.name in PER_TRACK_NAMES else [None]:
                if s.name in self.rerun:
                    continue
                try:
                    inp = s.build(self.log.pipe, state.outputs, track)
                except (KeyError, IndexError, TypeError, AttributeError, ValidationError):
                    continue  # a parent runs again, so this stage's input is not known yet
                out = self.log.try_reuse(s.name, track, inp)
                if out is None:
                    continue
                _put_output(state.outputs, s.name, track, out)
                state.nodes.setdefault((s.name, track), _Node()).final = True
                if isinstance(out, m.RecordingOut):
                    n_tracks = len(out.tracks)
        return state

    # ------------------------------------------------------------------ following a run

    def follow(self, engine_run_id: str, state: _Mirror | None = None) -> RunOutcome:
        """Mirror the engine's task states into the RunLog until the run is terminal."""
        relay = _StreamRelay(self.hatchet)
        relay.watch(engine_run_id)
        state = state or _Mirror()
        try:
            while True:
                status = self.sync_once(engine_run_id, state, relay)
                if status in _TERMINAL:
                    # One last look: the run's end may have raced the task listing.
                    self._apply(self._tasks(), state)
                    time.sleep(POLL_S)
                    self._forward(relay)
                    break
                time.sleep(POLL_S)
        finally:
            relay.close()
        return self.outcome(engine_run_id, status, state)

    def sync_once(
        self, engine_run_id: str, state: _Mirror, relay: _StreamRelay | None = None
    ) -> V1TaskStatus:
        """One look at the engine: record what changed since `state`; returns the run status."""
        status = self._settled_status(engine_run_id, state)
        state.run_over = status in _TERMINAL
        rows = self._tasks()
        if relay is not None:
            for r in rows:
                relay.watch(r.workflow_run_external_id)
        self._apply(rows, state)
        if relay is not None:
            self._forward(relay)
        return status

    def _settled_status(self, engine_run_id: str, state: _Mirror) -> V1TaskStatus:
        """The run's status, terminal only once the engine's own bookkeeping agrees.

        The listing (the engine's analytics tables) marks a task FAILED when the engine could
        not deliver it to a worker (e.g. one just killed) and then re-sends it; for a moment
        the whole run reads FAILED. The run details come from the engine's core tables, where
        that task is queued again, so a terminal listing counts only when they say done too
        and agree on the status (a lagging listing gets LISTING_LAG_S to catch up).
        """
        listed = self.hatchet.runs.get_status(engine_run_id)
        if listed not in _TERMINAL:
            state.disagree_since = None
            return listed
        details = self.hatchet.runs.get_details(engine_run_id)
        core = details.status.to_v1_task_status() if details.done else None
        if core == listed:
            state.disagree_since = None
            return listed
        now = time.monotonic()
        state.disagree_since = state.disagree_since or now
        if core in _TERMINAL and now - state.disagree_since > LISTING_LAG_S:
            return core
        return V1TaskStatus.RUNNING

    def outcome(self, engine_run_id: str, status: V1TaskStatus, state: _Mirror) -> RunOutcome:
        fatal = [(n, e) for n, e in state.failures if dag.stage(n).critical]
        if fatal:
            return RunOutcome("error", fatal[0][0], fatal[0][1], state.outputs)
        if status != V1TaskStatus.COMPLETED and "finalize" not in state.outputs:
            msg = f"engine run {engine_run_id}: {status.value}"
            return RunOutcome("error", None, msg, state.outputs)
        return RunOutcome("ended", outputs=state.outputs)

    def reattach(self, run: dict[str, Any]) -> RunOutcome:
        """Follow `run`'s engine run to its end, starting from what was already recorded.

        For a run whose submitter was killed, or that was submitted with --no-wait: the
        engine kept going, so there is nothing to start again.
        """
        engine_run_id = str(run["engine_run_id"])
        created = datetime.fromisoformat(str(run["created_at"]).replace("Z", "+00:00"))
        self._since = created - timedelta(minutes=5)
        self.engine_run_id = engine_run_id
        self.log.store.set_run(self.log.run_id, status="running")
        return self.follow(engine_run_id, self.restore())

    def restore(self) -> _Mirror:
        """What an earlier process already recorded for this run (for `sync_run`)."""
        state = _Mirror()
        for row in self.log.store.stage_runs(self.log.run_id):
            name, track = row["stage"], row["track"]
            if name not in dag.BY_NAME:
                continue
            node = state.nodes.setdefault((name, track), _Node())
            attempts = int(row["attempts"] or 0)
            if row["status"] == "done" and row["output"]:
                out = dag.stage(name).output_model.model_validate_json(row["output"])
                _put_output(state.outputs, name, track, out)
                node.final = True
            elif row["status"] == "failed":
                state.failures.append((name, row["error"] or "failed"))
                node.final = True
            elif row["status"] == "retrying":
                node.logged = 2 * attempts
            else:  # running
                node.logged = max(0, 2 * attempts - 1)
        return state

    def _tasks(self) -> list[Any]:
        rows = _list_tasks(self.hatchet, self._tag, self._since)
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

    def _forward(self, relay: _StreamRelay) -> None:
        for line in relay.drain():
            if isinstance(line, dict) and "type" in line:
                self.log.sink(str(line["type"]), dict(line.get("data") or {}))

    def _apply(self, rows: list[Any], state: _Mirror) -> None:
        keyed = []
        for r in rows:
            name = _task_name(r)
            if name not in dag.BY_NAME:
                continue  # the fan-out task is plumbing, not a stage
            meta = r.additional_metadata or {}
            track = int(meta["track"]) if name in PER_TRACK_NAMES and "track" in meta else None
            keyed.append(((_ORDER[name], -1 if track is None else track), name, track, r))
        for _, name, track, r in sorted(keyed, key=lambda k: k[0]):
            node = state.nodes.setdefault((name, track), _Node())
            if not node.final:
                self._advance(name, track, r, node, state)

    def _advance(self, name: str, track: int | None, r: Any, node: _Node, state: _Mirror) -> None:
        outputs = state.outputs
        retries = int(r.retry_count or 0)
        started = r.status in (V1TaskStatus.RUNNING, V1TaskStatus.COMPLETED, V1TaskStatus.FAILED)
        if r.status == V1TaskStatus.CANCELLED and r.started_at is None and retries == 0:
            return  # never ran (a parent failed): nothing to record
        # Events so far: start1, fail1, ..., start(k+1) when the current attempt has started.
        target = 2 * retries + (1 if started or r.status == V1TaskStatus.CANCELLED else 0)
        s = dag.stage(name)
        while node.logged < target:
            if node.logged % 2 == 0:
                try:
                    inp = s.build(self.log.pipe, outputs, track)
                except (KeyError, IndexError, TypeError, AttributeError, ValidationError):
                    return  # a parent's output not seen yet (e.g. a retried track): next poll
                self.log.started(name, track, inp)
            else:
                err = r.error_message or f"attempt {node.logged // 2 + 1} failed"
                self.log.failed(name, track, _one_line(err), final=False)
            node.logged += 1
        if r.status == V1TaskStatus.COMPLETED:
            out = self.log.done(name, track, r.output or {})
            _put_output(outputs, name, track, out)
            node.final = True
        elif r.status in (V1TaskStatus.FAILED, V1TaskStatus.CANCELLED):
            # Until the run is over a FAILED listing may be followed by another attempt: the
            # engine lists it between retries, and after a failed delivery to a worker, which
            # it re-sends (bumping retry_count) without spending the stage's retries.
            if not state.run_over:
                return
            err = _one_line(r.error_message or f"task {r.status.value.lower()}")
            self.log.failed(name, track, err, final=True)
            state.failures.append((name, err))
            node.final = True


def replay_engine_run(log: RunLog, old_run: dict[str, Any], settings: Settings) -> RunOutcome:
    """Replay `old_run`'s engine run in place and follow it as run `log.run_id`.

    The engine re-executes the failed tasks and their descendants (same task ids, retry_count
    bumped by one); every other stage is recorded as reused from the old run's checkpoints.
    """
    engine_run_id = old_run.get("engine_run_id")
    if not engine_run_id:
        raise UserError(f"run {old_run['id']}: no engine run id recorded; pass --force")
    created = datetime.fromisoformat(str(old_run["created_at"]).replace("Z", "+00:00"))
    prov = HatchetProvider(settings, log, since=created - timedelta(minutes=5))
    prov._tag = str(old_run["id"])
    rows = _list_tasks(prov.hatchet, prov._tag, prov._since)
    failed = [r for r in rows if r.status == V1TaskStatus.FAILED]
    if not failed:
        raise UserError(
            f"run {old_run['id']}: no failed task in engine run {engine_run_id} to replay; "
            "pass --force for a fresh run"
        )
    replayed = {_task_name(r) for r in failed}
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


def _reuse_old(log: RunLog, old_run_id: str, replayed: set[str]) -> _Mirror:
    """Record the old run's finished stages outside `replayed` as reused; the mirror's start."""
    state = _Mirror()
    rows = [
        r
        for r in log.store.stage_runs(old_run_id)
        if r["status"] == "done" and r["output"] and r["stage"] not in replayed
    ]
    log.pinned = {(r["stage"], r["track"]): r for r in rows}
    for r in sorted(rows, key=lambda r: (_ORDER[r["stage"]], r["track"] or -1)):
        name, track = r["stage"], r["track"]
        out = log.try_reuse(name, track, dag.stage(name).build(log.pipe, state.outputs, track))
        _put_output(state.outputs, name, track, out)
        state.nodes[(name, track)] = node = _Node()
        node.final = True
    return state


class _Mirror:
    """What has been recorded so far for a run: per-node progress, outputs, failures."""

    def __init__(self) -> None:
        self.nodes: dict[tuple[str, int | None], _Node] = {}
        self.outputs: dict[str, Any] = {}
        self.failures: list[tuple[str, str]] = []
        self.run_over = False  # the engine run is terminal: a FAILED task won't be retried
        self.disagree_since: float | None = None  # listing terminal, core tables not (yet)


def _output_of(outputs: dict[str, Any], name: str, track: int | None) -> BaseModel:
    out = outputs[name]
    return out if track is None else out[track]


def _put_output(outputs: dict[str, Any], name: str, track: int | None, out: Any) -> None:
    """Store a stage output the way dag.Stage.build reads it (per-track: list by track)."""
    if track is None:
        outputs[name] = out
        return
    rec = outputs.get("get_recording")
    n_tracks = len(rec.tracks) if isinstance(rec, m.RecordingOut) else 0
    n = max(track + 1, len(outputs.get(name) or []), n_tracks)
    slots = (list(outputs.get(name) or []) + [None] * n)[:n]
    slots[track] = out
    outputs[name] = slots


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
        created = datetime.fromisoformat(str(run["created_at"]).replace("Z", "+00:00"))
        prov = HatchetProvider(settings, log, since=created - timedelta(minutes=5))
        engine_run_id = str(run["engine_run_id"])
        state = prov.restore()
        status = prov.sync_once(engine_run_id, state)
        info["engine_status"] = status.value
        if status in _TERMINAL:
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


def _one_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    # Engine errors carry a traceback; its last line names the exception.
    return (lines[-1] if lines else text)[:500]


# --------------------------------------------------------------------------- doctor


def decode_token(token: str) -> dict[str, Any]:
    """The JWT payload (claims) of a Hatchet API token; raises ValueError if malformed."""
    import base64

    parts = token.strip().split(".")
    if len(parts) != 3:
        raise ValueError("not a JWT (expected three dot-separated parts)")
    body = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(body))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"payload is not base64 JSON ({exc})") from None
    if not isinstance(claims, dict):
        raise ValueError("payload is not a JSON object")
    return claims


def _host_port(addr: str, default_port: int) -> tuple[str, int] | None:
    """(host, port) of `host:port` or of a URL; None when unparsable."""
    from urllib.parse import urlsplit

    try:
        if "://" in addr:
            u = urlsplit(addr)
            port = u.port or (443 if u.scheme == "https" else 80)
            return (u.hostname, port) if u.hostname else None
        u = urlsplit("//" + addr)
        return (u.hostname, u.port or default_port) if u.hostname else None
    except ValueError:
        return None


def _reachable(addr: str, default_port: int, timeout_s: float) -> str | None:
    """None when a TCP connection to `addr` succeeds, else why not."""
    import socket

    hp = _host_port(addr, default_port)
    if hp is None:
        return "not a host:port or URL"
    try:
        with socket.create_connection(hp, timeout=timeout_s):
            return None
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def _endpoint_check(
    name: str,
    env_var: str,
    effective: str | None,
    claimed: str | None,
    default_port: int,
    required: bool,
    timeout_s: float,
) -> dict[str, Any]:
    """Compare the address the SDK will use with the one the token embeds, and dial both."""

    def result(ok: bool, detail: str) -> dict[str, Any]:
        return {"name": name, "ok": ok, "detail": detail, "required": required}

    if not effective:
        return result(False, f"no address: set {env_var}")
    source = "from the token" if effective == claimed else f"from {env_var}"
    err = _reachable(effective, default_port, timeout_s)
    if err is None:
        note = ""
        if claimed and claimed != effective:
            note = f"; the token says {claimed}, overridden by {env_var} (fine)"
        return result(True, f"{effective} reachable ({source}){note}")
    detail = f"{effective} ({source}) does not answer: {err}"
    if claimed and claimed != effective and _reachable(claimed, default_port, timeout_s) is None:
        return result(False, f"{detail}; the token's {claimed} does: set {env_var}={claimed}")
    if effective == claimed:
        # The classic trap: a token minted inside a container names the container's address.
        detail += (
            f". The token was minted for {claimed}, which this machine cannot reach (a token "
            "made inside a container names the container's address): set "
            f"{env_var}=<host:port of the engine as seen from here>"
        )
    return result(False, detail)


def hatchet_checks(
    settings: Settings, env: dict[str, str] | None = None, timeout_s: float = 2.0
) -> list[dict[str, Any]]:
    """`reflector doctor` rows for Hatchet: the token, and the gRPC and HTTP endpoints the SDK
    will use (env overrides vs the token's claims), each dialled over TCP.

    Each row is {"name", "ok", "detail", "required"}; rows are required only when Hatchet is
    the configured provider. `env` defaults to os.environ.
    """
    import os

    env = dict(os.environ if env is None else env)
    required = settings.provider == "hatchet"

    def row(name: str, ok: bool, detail: str) -> dict[str, Any]:
        return {"name": name, "ok": ok, "detail": detail, "required": required}

    token = env.get("HATCHET_CLIENT_TOKEN", "").strip()
    if not token:
        return [row("hatchet token", False, "HATCHET_CLIENT_TOKEN is not set")]
    try:
        claims = decode_token(token)
    except ValueError as exc:
        return [row("hatchet token", False, f"HATCHET_CLIENT_TOKEN is unreadable: {exc}")]
    claimed_grpc = claims.get("grpc_broadcast_address")
    claimed_url = claims.get("server_url")
    exp = claims.get("exp")
    expired = isinstance(exp, int | float) and exp < time.time()
    stamp = datetime.fromtimestamp(exp, UTC) if isinstance(exp, int | float) else None
    when = stamp.strftime("%Y-%m-%d") if stamp else "?"
    detail = f"tenant {claims.get('sub', '?')}, expires {when}"
    if expired:
        detail = f"expired on {when}: mint a new one (scripts/hatchet-local token)"
    checks = [row("hatchet token", not expired, detail)]
    checks.append(
        _endpoint_check(
            "hatchet grpc",
            "HATCHET_CLIENT_HOST_PORT",
            env.get("HATCHET_CLIENT_HOST_PORT") or claimed_grpc,
            claimed_grpc,
            7070,
            required,
            timeout_s,
        )
    )
    checks.append(
        _endpoint_check(
            "hatchet api",
            "HATCHET_CLIENT_SERVER_URL",
            env.get("HATCHET_CLIENT_SERVER_URL") or claimed_url,
            claimed_url,
            80,
            required,
            timeout_s,
        )
    )
    return checks
