"""The Hatchet provider: the DAG from dag.py as Hatchet workflows, a worker, and a submitter.

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
from pydantic import BaseModel

from reflector_cli import dag
from reflector_cli import models as m
from reflector_cli.config import Settings
from reflector_cli.errors import UserError
from reflector_cli.execute import run_stage
from reflector_cli.providers.local import RunOutcome
from reflector_cli.runlog import RunLog

PIPELINE_WF = "reflector-pipeline"
TRACK_WF = "reflector-track"
FANOUT = "tracks"  # the task between get_recording and the stages needing per-track outputs
RUN_KEY = "reflector_run"  # additional-metadata key tying every task of a run together
# Time a task may wait for a free worker: long, so a restarted worker still picks it up.
SCHEDULE_TIMEOUT = timedelta(hours=12)
POLL_S = 0.5
PROGRESS_EVERY_S = 0.5

log = logging.getLogger("reflector.hatchet")


class RunInput(m.Model):
    """Workflow input: the pipeline input plus what the engine needs to size timeouts."""

    pipeline: m.PipelineInput
    run_id: str
    audio_s: float | None = None


class TrackInput(m.Model):
    """Child workflow input: one track, with the outputs of its non-per-track ancestors."""

    pipeline: m.PipelineInput
    run_id: str
    audio_s: float | None = None
    track: int
    upstream: dict[str, dict[str, Any]]


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


def _extend(ctx: Context, registered: timedelta, wanted: timedelta) -> None:
    # Registered timeouts assume no audio; a long meeting gets its declared budget at start.
    if wanted > registered:
        ctx.refresh_timeout(wanted)


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
    stage: dag.Stage, inp: BaseModel, settings: Settings, ctx: Context, track: int | None
) -> BaseModel:
    log.info("take %s track=%s attempt=%d", stage.name, track, ctx.attempt_number)
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
        _extend(ctx, registered, _timeout(s, input.audio_s))
        return _call(s, s.build(input.pipeline, outputs, None), settings, ctx, None)

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
        _extend(ctx, registered, _timeout(s, input.audio_s))
        inp = s.build(input.pipeline, outputs, input.track)
        return _call(s, inp, settings, ctx, input.track)

    fn = _typed(body, s.name, TrackInput, s.output_model)
    return wf.task(
        name=s.name,
        parents=[tasks[p] for p in s.parents if p in PER_TRACK_NAMES],
        execution_timeout=registered,
        **_retry_opts(s.retries, settings),
    )(fn)


def _fanout_task(wf: Any, tasks: dict[str, Any], track_wf: Any, settings: Settings) -> Any:
    registered = timedelta(minutes=10)

    async def body(input: RunInput, ctx: DurableContext) -> FanoutOut:
        upstream = {p: ctx.task_output(tasks[p]) for p in FANOUT_PARENTS}
        rec = upstream["get_recording"]
        assert isinstance(rec, m.RecordingOut)
        n = len(rec.tracks)
        _extend(ctx, registered, _fanout_timeout(input.audio_s, n))
        up_json = {k: v.model_dump(mode="json") for k, v in upstream.items()}
        items = [
            track_wf.create_bulk_run_item(
                input=TrackInput(
                    pipeline=input.pipeline,
                    run_id=input.run_id,
                    audio_s=input.audio_s,
                    track=i,
                    upstream=up_json,
                ),
                key=f"track-{i}",
                additional_metadata={RUN_KEY: input.run_id, "track": str(i)},
            )
            for i in range(n)
        ]
        log.info("fan out %d track runs for %s", n, input.run_id)
        results = await track_wf.aio_run_many(items, return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise RuntimeError(f"{len(errors)} of {n} track runs failed: {errors[0]}")
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
    from reflector_cli.stages.asr import load_model

    t0 = time.monotonic()
    load_model(settings.model, settings.compute_type, settings.cpu_threads)
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
    wf, track_wf = build_workflows(hatchet, settings)
    hatchet.worker(name, slots=slots, workflows=[wf, track_wf]).start()


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
    ) -> None:
        self.settings = settings
        self.log = log
        # The engine re-executes the whole DAG: there is no checkpoint reuse to bypass here.
        self.rerun = set(rerun)
        self.no_wait = no_wait
        self._hatchet = hatchet
        self.engine_run_id: str | None = None
        # Lower bound for listing the run's tasks (the engine's list API needs a window).
        self._since = datetime.now(UTC) - timedelta(minutes=5)

    @property
    def hatchet(self) -> Hatchet:
        if self._hatchet is None:
            self._hatchet = client()
        return self._hatchet

    def submit(self) -> str:
        """Start `reflector-pipeline` for this run; returns (and stores) the engine run id."""
        pipe = self.log.pipe
        wf = self.hatchet.stubs.workflow(name=PIPELINE_WF, input_validator=RunInput)
        inp = RunInput(pipeline=pipe, run_id=self.log.run_id, audio_s=_audio_seconds(pipe))
        ref = wf.run(inp, wait_for_result=False, additional_metadata={RUN_KEY: self.log.run_id})
        self.engine_run_id = ref.workflow_run_id
        self.log.store.set_run(self.log.run_id, engine_run_id=self.engine_run_id)
        return self.engine_run_id

    def run(self) -> RunOutcome:
        engine_run_id = self.submit()
        if self.no_wait:
            return RunOutcome("submitted", outputs={"engine_run_id": engine_run_id})
        return self.follow(engine_run_id)

    # ------------------------------------------------------------------ following a run

    def follow(self, engine_run_id: str) -> RunOutcome:
        """Mirror the engine's task states into the RunLog until the run is terminal."""
        relay = _StreamRelay(self.hatchet)
        relay.watch(engine_run_id)
        nodes: dict[tuple[str, int | None], _Node] = {}
        outputs: dict[str, Any] = {}
        failures: list[tuple[str, str]] = []
        try:
            while True:
                status = self.hatchet.runs.get_status(engine_run_id)
                rows = self._tasks()
                for r in rows:
                    relay.watch(r.workflow_run_external_id)
                self._apply(rows, nodes, outputs, failures)
                self._forward(relay)
                if status in _TERMINAL:
                    # One last look: the run's end may have raced the task listing.
                    self._apply(self._tasks(), nodes, outputs, failures)
                    time.sleep(POLL_S)
                    self._forward(relay)
                    break
                time.sleep(POLL_S)
        finally:
            relay.close()
        fatal = [(n, e) for n, e in failures if dag.stage(n).critical]
        if fatal:
            return RunOutcome("error", fatal[0][0], fatal[0][1], outputs)
        if status != V1TaskStatus.COMPLETED and "finalize" not in outputs:
            return RunOutcome("error", None, f"engine run {engine_run_id}: {status.value}", outputs)
        return RunOutcome("ended", outputs=outputs)

    def _tasks(self) -> list[Any]:
        return _list_tasks(self.hatchet, self.log.run_id, self._since)

    def _forward(self, relay: _StreamRelay) -> None:
        for line in relay.drain():
            if isinstance(line, dict) and "type" in line:
                self.log.sink(str(line["type"]), dict(line.get("data") or {}))

    def _apply(
        self,
        rows: list[Any],
        nodes: dict[tuple[str, int | None], _Node],
        outputs: dict[str, Any],
        failures: list[tuple[str, str]],
    ) -> None:
        keyed = []
        for r in rows:
            name = _task_name(r)
            if name not in dag.BY_NAME:
                continue  # the fan-out task is plumbing, not a stage
            meta = r.additional_metadata or {}
            track = int(meta["track"]) if name in PER_TRACK_NAMES and "track" in meta else None
            keyed.append(((_ORDER[name], -1 if track is None else track), name, track, r))
        for _, name, track, r in sorted(keyed, key=lambda k: k[0]):
            node = nodes.setdefault((name, track), _Node())
            if not node.final:
                self._advance(name, track, r, node, outputs, failures)

    def _advance(
        self,
        name: str,
        track: int | None,
        r: Any,
        node: _Node,
        outputs: dict[str, Any],
        failures: list[tuple[str, str]],
    ) -> None:
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
                except (KeyError, IndexError, TypeError, AttributeError):
                    return  # a parent's output not seen yet: next poll
                self.log.started(name, track, inp)
            else:
                err = r.error_message or f"attempt {node.logged // 2 + 1} failed"
                self.log.failed(name, track, _one_line(err), final=False)
            node.logged += 1
        if r.status == V1TaskStatus.COMPLETED:
            out = self.log.done(name, track, r.output or {})
            if track is None:
                outputs[name] = out
            else:
                n = max(track + 1, len(outputs.get(name) or []), self._n_tracks(outputs))
                slots = list(outputs.get(name) or []) + [None] * n
                slots = slots[:n]
                slots[track] = out
                outputs[name] = slots
            node.final = True
        elif r.status in (V1TaskStatus.FAILED, V1TaskStatus.CANCELLED):
            err = _one_line(r.error_message or f"task {r.status.value.lower()}")
            self.log.failed(name, track, err, final=True)
            failures.append((name, err))
            node.final = True

    @staticmethod
    def _n_tracks(outputs: dict[str, Any]) -> int:
        rec = outputs.get("get_recording")
        return len(rec.tracks) if isinstance(rec, m.RecordingOut) else 0


def _one_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    # Engine errors carry a traceback; its last line names the exception.
    return (lines[-1] if lines else text)[:500]
