"""The local provider: runs the DAG in this process's scheduler, every stage in a process pool.

Stages run in spawned worker processes (one whisper model per worker, tracks in parallel up
to the cores); the scheduler in the main process is the only SQLite writer, checkpointing each
finished stage so a killed run resumes where it stopped.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from reflector_cli import dag
from reflector_cli import models as m
from reflector_cli.config import Settings
from reflector_cli.errors import UserError
from reflector_cli.execute import run_stage, warm_up
from reflector_cli.providers.local_task import init_worker, pool_task
from reflector_cli.providers.workerpool import RemoteError, WorkerDied, WorkerPool
from reflector_cli.runlog import RunLog, short_error

Node = tuple[str, int | None]


@dataclass
class RunOutcome:
    status: str  # ended | error
    error_stage: str | None = None
    error: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)


@dataclass
class _State:
    outputs: dict[str, Any] = field(default_factory=dict)
    done: dict[Node, BaseModel] = field(default_factory=dict)
    failed: dict[Node, str] = field(default_factory=dict)
    inflight: dict[Future[dict[str, Any]], Node] = field(default_factory=dict)
    # Heavy stages in worker processes: when each must be done (monotonic) and its timeout.
    deadlines: dict[Future[dict[str, Any]], tuple[float, float]] = field(default_factory=dict)
    delayed: list[tuple[float, Node]] = field(default_factory=list)
    n_tracks: int | None = None
    fatal: tuple[str, str] | None = None

    def outcome(self) -> RunOutcome:
        if self.fatal:
            return RunOutcome("error", self.fatal[0], self.fatal[1], self.outputs)
        return RunOutcome("ended", outputs=self.outputs)


class LocalProvider:
    name = "local"

    def __init__(self, settings: Settings, log: RunLog, *, rerun: Iterable[str] = ()) -> None:
        self.settings = settings
        self.log = log
        self.rerun = set(rerun)  # stages that must execute even when a checkpoint matches
        self._pool: WorkerPool | None = None
        self._events: Any = None
        # Light stages (declared in the DAG) run on threads here: no process hop per stage.
        self._threads = ThreadPoolExecutor(max_workers=4, thread_name_prefix="stage")
        self._thread_events: queue.SimpleQueue[tuple[str, dict[str, Any]]] = queue.SimpleQueue()

    # ------------------------------------------------------------------ graph

    def _nodes(self, st: _State) -> list[Node]:
        nodes: list[Node] = []
        for s in dag.STAGES:
            if not s.per_track:
                nodes.append((s.name, None))
            elif st.n_tracks is not None:
                nodes.extend((s.name, i) for i in range(st.n_tracks))
        return nodes

    def _parents_finished(self, node: Node, st: _State) -> bool:
        name, track = node
        for p in dag.stage(name).parents:
            ps = dag.stage(p)
            if ps.per_track and track is None:
                if st.n_tracks is None:
                    return False
                deps = [(p, i) for i in range(st.n_tracks)]
            else:
                deps = [(p, track if ps.per_track else None)]
            for d in deps:
                if d in st.done:
                    continue
                if d in st.failed and not ps.critical:
                    continue
                return False
        return True

    def _record(self, node: Node, out: BaseModel, st: _State) -> None:
        name, track = node
        st.done[node] = out
        if track is None:
            st.outputs[name] = out
        else:
            assert st.n_tracks is not None
            st.outputs.setdefault(name, [None] * st.n_tracks)[track] = out
        if dag.stage(name).fans_out:
            st.n_tracks = dag.track_count(st.outputs)

    # ------------------------------------------------------------------ execution

    def _pool_for(self) -> WorkerPool:
        if self._pool is None:
            self._pool = WorkerPool(self.settings.workers, init_worker)
            self._events = self._pool.events
        return self._pool

    def _warm_pool(self) -> None:
        """Start every worker and load the model now, overlapping the light first stages."""
        if "transcribe_track" in self.log.pinned_stages():
            return
        pool = self._pool_for()
        for _ in range(self.settings.workers):
            pool.submit(warm_up, self.log.pipe.asr)

    def _drain_events(self) -> None:
        for source in (self._events, self._thread_events):
            while source is not None:
                try:
                    event_type, data = source.get_nowait()
                except queue.Empty:
                    break
                self.log.sink(event_type, data)

    def _input_or_reuse(self, node: Node, st: _State) -> BaseModel | None:
        """The stage's input, or None when a matching checkpoint was reused instead."""
        name, track = node
        inp = dag.stage(name).build(self.log.pipe, st.outputs, track)
        if name not in self.rerun:
            out = self.log.try_reuse(name, track, inp)
            if out is not None:
                self._record(node, out, st)
                return None
        return inp

    def _start(self, node: Node, st: _State) -> bool:
        """Reuse a checkpoint or submit the stage; False when it had to wait for a slot."""
        name, track = node
        s = dag.stage(name)
        inp = self._input_or_reuse(node, st)
        if inp is None:
            return True
        payload = inp.model_dump(mode="json")
        if s.light:
            attempt = self.log.started(name, track, inp)
            fut = self._threads.submit(
                run_stage,
                name,
                payload,
                self.settings,
                track=track,
                attempt=attempt,
                emit_fn=lambda t, d: self._thread_events.put((t, d)),
            )
            st.inflight[fut] = node
            return True
        heavy = sum(not dag.stage(n).light for n, _ in st.inflight.values())
        if heavy >= self.settings.workers:
            return False
        attempt = self.log.started(name, track, inp)
        fut = self._pool_for().submit(pool_task, name, payload, self.settings, track, attempt)
        st.inflight[fut] = node
        limit = self._timeout(s, st)
        st.deadlines[fut] = (time.monotonic() + limit, limit)
        return True

    def _timeout(self, s: dag.Stage, st: _State) -> float:
        rec = st.outputs.get(dag.FANOUT_SOURCE)
        audio_s = rec.duration_s if isinstance(rec, m.RecordingOut) else None
        return s.timeout_s(audio_s, self.settings.timeout_overrides)

    def _enforce_timeouts(self, st: _State) -> None:
        """Kill the worker of a heavy stage past its timeout: the attempt fails, and the
        worker is replaced by a fresh process for whatever runs next."""
        now = time.monotonic()
        for fut, (deadline, limit) in list(st.deadlines.items()):
            if now > deadline and not fut.done() and self._pool is not None:
                name, track = st.inflight[fut]
                where = name if track is None else f"{name} (track {track})"
                self._pool.kill(fut, f"{where}: timed out after {limit:g} s")
                del st.deadlines[fut]

    def _finish(self, fut: Future[dict[str, Any]], st: _State) -> None:
        node = st.inflight.pop(fut)
        st.deadlines.pop(fut, None)
        name, track = node
        s = dag.stage(name)
        try:
            result = fut.result()
        except BaseException as exc:  # noqa: BLE001 - any stage failure is recorded, not raised
            self._drain_events()
            attempts = self.log._attempts(name, track)
            policy = s.retry_policy(self.settings)
            permanent = isinstance(exc, UserError) or getattr(exc, "permanent", False)
            error = str(exc) if isinstance(exc, RemoteError | WorkerDied) else short_error(exc)
            final = permanent or attempts >= policy.max_attempts
            self.log.failed(name, track, error, final=final)
            if not final:
                delay = policy.delay_s(attempts)
                st.delayed.append((time.monotonic() + delay, node))
            else:
                st.failed[node] = error
                if s.critical and st.fatal is None:
                    st.fatal = (name, error)
            return
        self._drain_events()
        self._record(node, self.log.done(name, track, result), st)

    def _ready(self, st: _State) -> list[Node]:
        delayed = {n for _, n in st.delayed}
        busy = set(st.inflight.values()) | delayed
        ready = [
            n
            for n in self._nodes(st)
            if n not in st.done
            and n not in st.failed
            and n not in busy
            and self._parents_finished(n, st)
        ]
        return sorted(ready, key=lambda n: -dag.stage(n[0]).priority)

    def _release_delayed(self, st: _State) -> list[Node]:
        now = time.monotonic()
        due = [n for t, n in st.delayed if t <= now]
        st.delayed = [(t, n) for t, n in st.delayed if t > now]
        return due

    def run(self) -> RunOutcome:
        st = _State()
        stopped = True  # until the loop ends normally: interrupted (or crashed)
        try:
            self._warm_pool()
            while True:
                if st.fatal is None:
                    progressed = True
                    while progressed:
                        progressed = False
                        due = self._release_delayed(st)
                        for node in dict.fromkeys(due + self._ready(st)):
                            if node in st.done or node in st.inflight.values():
                                continue
                            if not self._start(node, st):
                                st.delayed.append((0.0, node))  # no free slot: try next tick
                                continue
                            progressed = True
                            if dag.stage(node[0]).fans_out and node in st.done:
                                break  # track count just became known: recompute the graph
                if not st.inflight and (st.fatal is not None or not st.delayed):
                    break
                if st.inflight:
                    finished, _ = wait(list(st.inflight), timeout=0.2, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        self._finish(fut, st)
                    self._enforce_timeouts(st)
                else:
                    time.sleep(0.05)
                self._drain_events()
            stopped = False
        finally:
            self.close(kill=stopped)
        return st.outcome()

    def close(self, kill: bool = False) -> None:
        """Stop workers and threads; `kill` (interrupted) ends running stages at once."""
        if self._pool is not None:
            self._pool.close(kill=kill)
            self._pool = None
        # A light stage on a thread can't be killed: when interrupted, nobody waits for it.
        self._threads.shutdown(wait=not kill, cancel_futures=True)
        if not kill:
            self._drain_events()
