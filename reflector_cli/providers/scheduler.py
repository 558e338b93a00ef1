"""The one dispatch loop of the providers that schedule stages themselves (local, Celery).

It walks `dag.STAGES`: a stage is ready once its parents are done (a non-critical parent may
have failed), per-track stages get one node per track once `dag.track_count` knows how many, a
matching checkpoint is reused instead of running, a failed attempt is retried after its
RetryPolicy's `delay_s` until the policy or a permanent error (bad input) makes it final, and a
final failure of a critical stage ends the run. Where a stage runs is the `Executor`'s business;
everything recorded goes through the `Recorder`. The helpers for output slots and checkpoint
reuse serve the Hatchet submitter as well.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from reflector_cli.core.config import Settings
from reflector_cli.pipeline import dag
from reflector_cli.pipeline.runinput import audio_seconds
from reflector_cli.providers.recorder import Done, Event, Failed, Recorder, Started

Node = tuple[str, int | None]
# What Stage.build raises while a parent's output is missing (not reused, not seen yet).
INPUT_NOT_READY = (KeyError, IndexError, TypeError, AttributeError, ValidationError)
TICK_S = 0.2  # longest wait for a finished stage before looking at retries and timeouts again


@dataclass
class RunOutcome:
    status: str  # ended | error (| submitted: a Hatchet run nobody follows)
    error_stage: str | None = None
    error: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Completion:
    """An attempt's end as the executor saw it: the output (JSON), or the error and whether
    it is permanent (bad input: never retried)."""

    node: Node
    output: dict[str, Any] | None = None
    error: str | None = None
    permanent: bool = False


class Executor(Protocol):
    """Where stages run. `submit` hands one attempt over (False: no free slot, ask again
    later); `wait` returns, in order, the records workers sent (Started, Event) and the
    attempts that ended, waiting at most `timeout_s` for the first."""

    # False: the scheduler records an attempt's start when it hands the attempt over.
    reports_start: bool

    def start(self) -> None: ...

    def submit(self, node: Node, inp: BaseModel, attempt: int, timeout_s: float) -> bool: ...

    def wait(self, timeout_s: float) -> list[Started | Event | Completion]: ...

    def close(self, kill: bool) -> None: ...


# --------------------------------------------------------------------------- shared helpers


def put_output(outputs: dict[str, Any], name: str, track: int | None, out: Any) -> None:
    """Store a stage output the way dag.Stage.build reads it (per-track: a list by track)."""
    if track is None:
        outputs[name] = out
        return
    n = max(track + 1, len(outputs.get(name) or []), dag.track_count(outputs) or 0)
    slots = (list(outputs.get(name) or []) + [None] * n)[:n]
    slots[track] = out
    outputs[name] = slots


def nodes(n_tracks: int | None) -> list[Node]:
    """Every (stage, track) of the DAG in declaration order; per-track ones once known."""
    out: list[Node] = []
    for s in dag.STAGES:
        if not s.per_track:
            out.append((s.name, None))
        elif n_tracks is not None:
            out.extend((s.name, i) for i in range(n_tracks))
    return out


def input_or_reuse(
    log: Recorder, rerun: set[str], outputs: dict[str, Any], node: Node
) -> BaseModel | None:
    """The stage's input, or None when a matching checkpoint was reused (its output is then
    in `outputs`). Raises INPUT_NOT_READY while a parent's output is missing."""
    name, track = node
    inp = dag.stage(name).build(log.pipe, outputs, track)
    if name in rerun:
        return inp
    out = log.try_reuse(name, track, inp)
    if out is None:
        return inp
    put_output(outputs, name, track, out)
    return None


def reuse_checkpoints(log: Recorder, rerun: set[str]) -> list[tuple[Node, BaseModel]]:
    """Reuse, in DAG order, every checkpoint whose input is known from the ones reused before
    it (for a provider that hands the whole run over at once: Hatchet)."""
    outputs: dict[str, Any] = {}
    reused: list[tuple[Node, BaseModel]] = []
    for s in dag.STAGES:
        for track in range(dag.track_count(outputs) or 0) if s.per_track else [None]:
            try:
                if input_or_reuse(log, rerun, outputs, (s.name, track)) is None:
                    out = outputs[s.name] if track is None else outputs[s.name][track]
                    reused.append(((s.name, track), out))
            except INPUT_NOT_READY:
                continue  # a parent runs again, so this stage's input is not known yet
    return reused


def conclude(
    fatal: tuple[str, str] | None, outputs: dict[str, Any], unfinished: str | None
) -> RunOutcome:
    """The run's outcome: the first final failure of a critical stage (`fatal`) is its error;
    otherwise it ended once `dag.succeeded`, else it failed for `unfinished` (None: the engine
    itself says the run completed)."""
    if fatal:
        return RunOutcome("error", fatal[0], fatal[1], outputs)
    if unfinished is not None and not dag.succeeded(outputs):
        return RunOutcome("error", None, unfinished, outputs)
    return RunOutcome("ended", outputs=outputs)


# --------------------------------------------------------------------------- the loop


@dataclass
class _State:
    outputs: dict[str, Any] = field(default_factory=dict)
    done: set[Node] = field(default_factory=set)
    failed: dict[Node, str] = field(default_factory=dict)
    inflight: set[Node] = field(default_factory=set)
    attempts: dict[Node, int] = field(default_factory=dict)
    delayed: list[tuple[float, Node]] = field(default_factory=list)  # retries: (when due, node)
    waiting: list[Node] = field(default_factory=list)  # no free slot: asked again next pass
    fatal: tuple[str, str] | None = None

    def outcome(self) -> RunOutcome:
        why = f"the run ended before {dag.SUCCESS_STAGE} finished"
        return conclude(self.fatal, self.outputs, why)

    def parents_finished(self, node: Node) -> bool:
        name, track = node
        n_tracks = dag.track_count(self.outputs)
        stage = dag.stage(name)
        for p in stage.parents:
            ps = dag.stage(p)
            if ps.per_track and (track is None or p in stage.gathers):
                if n_tracks is None:
                    return False
                deps = [(p, i) for i in range(n_tracks)]
            else:
                deps = [(p, track if ps.per_track else None)]
            for d in deps:
                if d not in self.done and not (d in self.failed and not ps.critical):
                    return False
        return True

    def ready(self) -> list[Node]:
        busy = self.inflight | {n for _, n in self.delayed} | set(self.waiting)
        ready = [
            n
            for n in nodes(dag.track_count(self.outputs))
            if n not in self.done
            and n not in self.failed
            and n not in busy
            and self.parents_finished(n)
        ]
        return sorted(ready, key=lambda n: -dag.stage(n[0]).priority)

    def release_due(self) -> list[Node]:
        now = time.monotonic()
        due = [n for t, n in self.delayed if t <= now] + self.waiting
        self.delayed = [(t, n) for t, n in self.delayed if t > now]
        self.waiting = []
        return due

    def pending(self) -> bool:
        return bool(self.delayed or self.waiting)

    def next_due_in(self) -> float:
        if not self.delayed:
            return TICK_S
        return max(0.0, min(TICK_S, min(t for t, _ in self.delayed) - time.monotonic()))


class Scheduler:
    """Runs one recording's DAG on `executor`, recording through `log`."""

    name = "scheduler"

    def __init__(
        self, settings: Settings, log: Recorder, executor: Executor, *, rerun: Iterable[str] = ()
    ) -> None:
        self.settings = settings
        self.log = log
        self.executor = executor
        self.rerun = set(rerun)  # stages that must execute even when a checkpoint matches

    def run(self) -> RunOutcome:
        st = _State()
        stopped = True  # until the loop ends normally: interrupted (or crashed)
        try:
            self.executor.start()
            while True:
                if st.fatal is None:
                    self._dispatch(st)
                if not st.inflight and (st.fatal is not None or not st.pending()):
                    break
                for item in self.executor.wait(st.next_due_in()):
                    self._take(item, st)
            stopped = False
        finally:
            self.executor.close(kill=stopped)
        return st.outcome()

    def _dispatch(self, st: _State) -> None:
        progressed = True
        while progressed:
            progressed = False
            for node in dict.fromkeys(st.release_due() + st.ready()):
                if node in st.done or node in st.inflight:
                    continue
                if not self._start(node, st):
                    st.waiting.append(node)  # no free slot: try again next pass
                    continue
                progressed = True
                if dag.stage(node[0]).fans_out and node in st.done:
                    break  # the track count just became known: recompute the graph

    def _start(self, node: Node, st: _State) -> bool:
        """Reuse a checkpoint or submit the next attempt; False when no slot was free."""
        name, track = node
        inp = input_or_reuse(self.log, self.rerun, st.outputs, node)
        if inp is None:
            st.done.add(node)
            return True
        attempt = st.attempts.get(node, 0) + 1
        audio_s = audio_seconds(st.outputs)
        limit = dag.stage(name).timeout_s(audio_s, self.settings.timeout_overrides)
        if not self.executor.submit(node, inp, attempt, limit):
            return False
        st.attempts[node] = attempt
        st.inflight.add(node)
        if not self.executor.reports_start:
            payload = inp.model_dump(mode="json")
            self.log.apply(Started(stage=name, track=track, attempt=attempt, input=payload))
        return True

    def _take(self, item: Started | Event | Completion, st: _State) -> None:
        if not isinstance(item, Completion):
            self.log.apply(item)
            return
        node = item.node
        if node not in st.inflight:
            return  # an attempt reported twice (e.g. a redelivered Celery task)
        st.inflight.discard(node)
        name, track = node
        attempt = st.attempts[node]
        if item.output is not None:
            rec = Done(stage=name, track=track, attempt=attempt, output=item.output)
            put_output(st.outputs, name, track, self.log.apply(rec))
            st.done.add(node)
            return
        s = dag.stage(name)
        policy = s.retry_policy(self.settings)
        error = item.error or "failed"
        final = item.permanent or attempt >= policy.max_attempts
        self.log.apply(Failed(stage=name, track=track, attempt=attempt, error=error, final=final))
        if not final:
            st.delayed.append((time.monotonic() + policy.delay_s(attempt), node))
            return
        st.failed[node] = error
        if s.critical and st.fatal is None:
            st.fatal = (name, error)
