"""The DAG from dag.py as Hatchet workflows (`reflector-pipeline`, and per fan-out one child
run per track: `reflector-track`, then `reflector-track-2` for the stages that gather every
track's output of the first), and the worker that runs them."""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from hatchet_sdk import Context, DurableContext, Hatchet, NonRetryableException
from pydantic import BaseModel

from reflector_cli.core.config import Settings
from reflector_cli.core.errors import UserError
from reflector_cli.pipeline import dag
from reflector_cli.pipeline.execute import asr_options, run_stage, warm_up
from reflector_cli.providers.hatchet.common import (
    FANOUT_OF,
    FANOUTS,
    LAYERS,
    PER_TRACK_NAMES,
    PIPELINE_WF,
    RUN_KEY,
    SCHEDULE_TIMEOUT,
    TOP,
    TRACK_WFS,
    FanoutOut,
    RunInput,
    StageFailed,
    TrackInput,
    child_parents,
    client,
    failed_marker,
    fanout_parents,
    log,
    node_key,
)
from reflector_cli.providers.recorder import Done, Event, Failed, Started, short_error

PROGRESS_EVERY_S = 0.5
# Engine slots per heavy slot. The engine's scheduler sees slots a task frees only at its next
# slot refresh (about once a second), so a worker whose engine slots are all taken makes every
# next task wait ~1 s. Registering spare slots keeps tasks flowing; CPU use is bounded in the
# worker by a semaphore sized to the requested slots instead (see _HeavyGate).
ENGINE_SLOTS_PER_SLOT = 4
ENGINE_SLOTS_EXTRA = 4
GATE_REFRESH_S = 20


def _timeout(stage: dag.Stage, audio_s: float | None, settings: Settings) -> timedelta:
    """One attempt's budget. The engine enforces what the worker registered, so an override in
    the worker's settings (REFLECTOR_STAGE_TIMEOUTS) is what counts on this provider. The
    engine counts whole seconds (a fraction would truncate to no timeout), so it rounds up."""
    seconds = stage.timeout_s(audio_s, settings.timeout_overrides)
    return timedelta(seconds=max(1, math.ceil(seconds)))


def _fanout_timeout(
    layer: tuple[dag.Stage, ...], audio_s: float | None, n_tracks: int, settings: Settings
) -> timedelta:
    """Worst case: every track's stages run one after another, each using every retry."""
    per_track = 0.0
    for s in layer:
        policy = s.retry_policy(settings)
        waits = sum(policy.delay_s(n) for n in range(1, policy.max_attempts))
        per_track += s.timeout_s(audio_s, settings.timeout_overrides) * policy.max_attempts + waits
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


def _report(ctx: Context, rec: Started | Failed | Done | Event) -> None:
    """Send a record to the submitter on the run's event stream (best effort: the submitter
    reconciles with the engine's task listing)."""
    try:
        ctx.put_stream(rec.model_dump_json())
    except Exception as exc:  # noqa: BLE001 - a lost record is not a failed stage
        log.warning("record not streamed (%s): %s", rec.kind, exc)


def _emitter(ctx: Context) -> Callable[[str, dict[str, Any]], None]:
    last = [0.0]

    def emit(event_type: str, data: dict[str, Any]) -> None:
        # Each push is a blocking RPC in the stage's thread: progress is thinned to 2 per second.
        if event_type == "PROGRESS":
            now = time.monotonic()
            if now - last[0] < PROGRESS_EVERY_S:
                return
            last[0] = now
        _report(ctx, Event(type=event_type, data=json.loads(json.dumps(data, default=str))))

    return emit


def _call(
    stage: dag.Stage,
    inp: BaseModel,
    settings: Settings,
    ctx: Context,
    track: int | None,
    input: RunInput | TrackInput,
) -> BaseModel:
    """Run the stage for this task; a non-critical stage's final failure becomes a marker."""
    done = input.reused.get(node_key(stage.name, track))
    if done is not None:
        log.info("reuse %s track=%s", stage.name, track)
        return stage.output_model.model_validate(done)
    audio_s = input.audio_s
    log.info("take %s track=%s attempt=%d", stage.name, track, ctx.attempt_number)
    _extend(ctx, _timeout(stage, None, settings), _timeout(stage, audio_s, settings))
    _backoff(stage, settings, ctx)
    if not stage.light:
        _GATE.acquire(ctx)
    attempt = ctx.attempt_number
    payload = inp.model_dump(mode="json")
    try:
        _report(ctx, Started(stage=stage.name, track=track, attempt=attempt, input=payload))
        out = run_stage(
            stage.name, payload, settings, track=track, attempt=attempt, emit_fn=_emitter(ctx)
        )
    except Exception as exc:
        last = isinstance(exc, UserError) or attempt >= stage.retry_policy(settings).max_attempts
        error = short_error(exc)
        rec = Failed(stage=stage.name, track=track, attempt=attempt, error=error, final=last)
        _report(ctx, rec)
        if not stage.critical and last:
            log.warning("non-critical %s track=%s failed: %s", stage.name, track, exc)
            return StageFailed(stage_failed=error)
        if isinstance(exc, UserError):
            # Bad input never gets better: tell the engine not to retry.
            raise NonRetryableException(str(exc)) from exc
        raise
    finally:
        if not stage.light:
            _GATE.release()
    log.info("done %s track=%s", stage.name, track)
    _report(ctx, Done(stage=stage.name, track=track, attempt=attempt, output=out))
    return stage.output_model.model_validate(out)


def _returns(s: dag.Stage) -> Any:
    """The task's declared output: a non-critical stage may also return the failure marker."""
    return s.output_model if s.critical else s.output_model | StageFailed


def _typed(
    fn: Callable[..., Any], name: str, inp: type, out: type, ctx: type = Context
) -> Callable[..., Any]:
    # The SDK reads the return annotation to validate parent outputs (ctx.task_output).
    fn.__name__ = fn.__qualname__ = name
    fn.__annotations__ = {"input": inp, "ctx": ctx, "return": out}
    return fn


def _retry_opts(stage: dag.Stage, settings: Settings) -> dict[str, Any]:
    # No engine backoff: the engine's formula (factor**k, no initial wait) cannot express the
    # declared policy, so the retried task waits `policy.delay_s` itself (see _backoff).
    return {"retries": stage.retry_policy(settings).retries, "schedule_timeout": SCHEDULE_TIMEOUT}


def _backoff(stage: dag.Stage, settings: Settings, ctx: Context) -> None:
    """Before a retry, wait as the declared RetryPolicy says (the same formula everywhere)."""
    if ctx.attempt_number <= 1:
        return
    wait = stage.retry_policy(settings).delay_s(ctx.attempt_number - 1)
    if wait > 0:
        ctx.refresh_timeout(timedelta(seconds=wait))  # the wait must not eat the stage's budget
        time.sleep(wait)


def build_workflows(hatchet: Hatchet, settings: Settings) -> list[Any]:
    """Generate `reflector-pipeline` and one child workflow per fan-out from the DAG."""
    tasks: dict[str, Any] = {}
    children = []
    for k, layer in enumerate(LAYERS):
        child = hatchet.workflow(name=TRACK_WFS[k], input_validator=TrackInput)
        for s in layer:
            tasks[s.name] = _track_task(child, tasks, s, settings)
        children.append(child)
    wf = hatchet.workflow(name=PIPELINE_WF, input_validator=RunInput)
    for s in TOP:
        for p in s.parents:
            if p in FANOUT_OF:
                _add_fanouts(wf, tasks, children, settings, FANOUTS.index(FANOUT_OF[p]) + 1)
        tasks[s.name] = _top_task(wf, tasks, s, settings)
    return [wf, *children]


def _add_fanouts(
    wf: Any, tasks: dict[str, Any], children: list[Any], settings: Settings, upto: int
) -> None:
    """Declare fan-outs 0..upto-1 that are not declared yet (each waits for the one before)."""
    for k in range(upto):
        if FANOUTS[k] not in tasks:
            tasks[FANOUTS[k]] = _fanout_task(wf, tasks, children[k], k, settings)


def _top_task(wf: Any, tasks: dict[str, Any], s: dag.Stage, settings: Settings) -> Any:
    parents = list(dict.fromkeys(FANOUT_OF.get(p, p) for p in s.parents))
    registered = _timeout(s, None, settings)

    def body(input: RunInput, ctx: Context) -> BaseModel:
        outputs: dict[str, Any] = {}
        for p in s.parents:
            if p in PER_TRACK_NAMES:
                per = ctx.task_output(tasks[FANOUT_OF[p]]).outputs[p]
                outputs[p] = [dag.stage(p).output_model.model_validate(o) for o in per]
            else:
                out = ctx.task_output(tasks[p])
                if failed_marker(out) is None:  # a failed non-critical parent gives nothing
                    outputs[p] = out
        return _call(s, s.build(input.pipeline, outputs, None), settings, ctx, None, input)

    fn = _typed(body, s.name, RunInput, _returns(s))
    return wf.task(
        name=s.name,
        parents=[tasks[p] for p in parents],
        execution_timeout=registered,
        **_retry_opts(s, settings),
    )(fn)


def _track_task(wf: Any, tasks: dict[str, Any], s: dag.Stage, settings: Settings) -> Any:
    registered = _timeout(s, None, settings)
    here = child_parents(s)  # the rest: from the parent run (earlier fan-outs: every track's)

    def body(input: TrackInput, ctx: Context) -> BaseModel:
        outputs: dict[str, Any] = {}
        for p in s.parents:
            model = dag.stage(p).output_model
            if p in here:
                # Only this track's slot is filled; build() indexes by track.
                slots: list[Any] = [None] * (input.track + 1)
                slots[input.track] = ctx.task_output(tasks[p])
                outputs[p] = slots
            elif p in PER_TRACK_NAMES:  # from an earlier fan-out: every track's
                outputs[p] = [model.model_validate(o) for o in input.upstream[p]]
            else:
                outputs[p] = model.model_validate(input.upstream[p])
        inp = s.build(input.pipeline, outputs, input.track)
        return _call(s, inp, settings, ctx, input.track, input)

    fn = _typed(body, s.name, TrackInput, _returns(s))
    return wf.task(
        name=s.name,
        parents=[tasks[p] for p in here],
        execution_timeout=registered,
        **_retry_opts(s, settings),
    )(fn)


def _reused_track(
    layer: tuple[dag.Stage, ...], reused: dict[str, dict[str, Any]], track: int
) -> dict[str, Any] | None:
    """Every output of the layer's stages for `track` when all were reused, else None."""
    outs = {s.name: reused.get(node_key(s.name, track)) for s in layer}
    return None if any(o is None for o in outs.values()) else outs


def _by_task(layer: tuple[dag.Stage, ...], result: dict[str, Any]) -> dict[str, Any]:
    """A child run's outputs keyed by task name: through a durable parent (engine v0.80+) the
    SDK hands a one-task child's output back bare, through the run listener keyed."""
    names = {s.name for s in layer}
    return result if set(result) == names else {layer[0].name: result}


def _fanout_task(wf: Any, tasks: dict[str, Any], track_wf: Any, k: int, settings: Settings) -> Any:
    registered = timedelta(minutes=10)
    layer, parents = LAYERS[k], fanout_parents(k)

    async def body(input: RunInput, ctx: DurableContext) -> FanoutOut:
        upstream = {p: ctx.task_output(tasks[p]) for p in parents if p not in FANOUTS}
        n = dag.track_count(upstream) or 0
        _extend(ctx, registered, _fanout_timeout(layer, input.audio_s, n, settings))
        up_json: dict[str, Any] = {p: v.model_dump(mode="json") for p, v in upstream.items()}
        # Earlier fan-outs' per-track outputs, by track, for the stages that gather them; this
        # fan-out returns them too, so whoever reads the last fan-out sees every per-track stage.
        before = ctx.task_output(tasks[FANOUTS[k - 1]]).outputs if k > 0 else {}
        up_json.update(before)
        # A track whose every stage was reused needs no child run at all.
        results: list[Any] = [_reused_track(layer, input.reused, i) for i in range(n)]
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
        log.info("fan out %d of %d %s runs for %s", len(todo), n, TRACK_WFS[k], input.run_id)
        ran = await track_wf.aio_run_many(items, return_exceptions=True) if items else []
        errors = [r for r in ran if isinstance(r, BaseException)]
        if errors:
            raise RuntimeError(f"{len(errors)} of {n} track runs failed: {errors[0]}")
        for i, r in zip(todo, ran, strict=True):
            results[i] = _by_task(layer, r)
        outputs = {**before, **{s.name: [dict(r[s.name]) for r in results] for s in layer}}
        return FanoutOut(outputs=outputs)

    fn = _typed(body, FANOUTS[k], RunInput, FanoutOut, DurableContext)
    # A durable task waits in the durable slot pool, so a 1-slot worker still runs the
    # children (a plain task would hold the only slot while waiting: deadlock).
    # No retries: the children carry their own, and a failed child stays failed.
    return wf.durable_task(
        name=FANOUTS[k],
        parents=[tasks[p] for p in parents],
        execution_timeout=registered,
        retries=0,
        schedule_timeout=SCHEDULE_TIMEOUT,
    )(fn)


# --------------------------------------------------------------------------- worker


def run_worker(settings: Settings, slots: int = 1, name: str = "reflector-worker") -> None:
    """Register both workflows and process tasks until stopped (blocks; main thread only)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    t0 = time.monotonic()
    # Heavy stages run on this process's threads, up to `slots` at once (_HeavyGate): one
    # model replica each, or the transcriptions would take turns on one.
    warm_up(asr_options(settings), parallel=slots)
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
    workflows = build_workflows(hatchet, settings)
    from reflector_cli.providers.hatchet.presence import start_worker

    start_worker(hatchet, name, engine_slots(slots), workflows, settings)
