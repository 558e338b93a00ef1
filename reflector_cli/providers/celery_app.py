"""The Celery provider: one generic task per DAG stage, run by workers on a Redis broker.

Orchestration: the orchestrating process dispatches each ready stage as its own task (no
canvas). The per-track fan-out is only known after `get_recording`, non-critical stages may fail
without stopping their children, and checkpoints are reused stage by stage; a static
chain/group/chord expresses none of that, and it hides per-stage start/finish from the
submitter. Dispatching one task per ready stage means the RunLog records `started` at dispatch
and `done`/`failed` when that task's result arrives, so the SQLite rows equal the local
provider's. Retries happen in the worker (the stage's declared RetryPolicy, UserError never
retried); each attempt and failure, and every stage event, is pushed
onto a per-run Redis list that the orchestrator drains in order (a list, unlike pub/sub, keeps
what was sent while nobody was listening). This is the only module that imports celery.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
from collections.abc import Callable, Iterable
from typing import Any

import redis
from celery import Celery, Task
from celery.result import AsyncResult
from celery.signals import worker_process_init, worker_ready
from kombu.utils.url import maybe_sanitize_url

from reflector_cli.core import lifeline
from reflector_cli.core.config import Settings, load_settings
from reflector_cli.core.errors import UserError
from reflector_cli.pipeline import dag
from reflector_cli.pipeline.execute import asr_options, run_stage, warm_up
from reflector_cli.pipeline.runinput import audio_seconds
from reflector_cli.providers.local import LocalProvider, Node, RunOutcome, _State
from reflector_cli.providers.runlog import RunLog, short_error

DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
TASK_PREFIX = "reflector."
EVENTS_TTL_S = 24 * 3600
# Grace between the soft limit (the stage sees an exception, may be retried) and the kill.
HARD_LIMIT_GRACE_S = 30.0
PING_TIMEOUT_S = 2.0
POLL_S = 0.5  # only a backstop: workers push a wake-up when a result is stored

log = logging.getLogger("reflector.celery")


def broker_url() -> str:
    return os.environ.get("CELERY_BROKER_URL") or DEFAULT_BROKER


def backend_url() -> str:
    return os.environ.get("CELERY_RESULT_BACKEND") or broker_url()


def events_key(run_id: str) -> str:
    return f"reflector:run:{run_id}:events"


def configure(celery_app: Celery) -> Celery:
    """Point the app at the broker/backend named in the environment *now* (not at import)."""
    celery_app.conf.update(
        broker_url=broker_url(),
        result_backend=backend_url(),
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        # Stages are long: take one at a time, and only ack when finished so a killed
        # worker's stage is redelivered to another one instead of being lost.
        worker_prefetch_multiplier=1,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # Redis redelivers unacked tasks after this; it must exceed the longest stage.
        broker_transport_options={"visibility_timeout": 12 * 3600},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    return celery_app


# --------------------------------------------------------------------------- worker side

_worker_settings: Settings | None = None
_redis: tuple[int, redis.Redis] | None = None


def worker_settings() -> Settings:
    global _worker_settings
    if _worker_settings is None:
        _worker_settings = load_settings()
    return _worker_settings


def _events_client() -> redis.Redis:
    """One client per process: a prefork child must not reuse its parent's sockets."""
    global _redis
    if _redis is None or _redis[0] != os.getpid():
        _redis = (os.getpid(), redis.Redis.from_url(broker_url()))
    return _redis[1]


def push_event(run_id: str, item: dict[str, Any]) -> None:
    key = events_key(run_id)
    client = _events_client()
    client.rpush(key, json.dumps(item, default=str))
    client.expire(key, EVENTS_TTL_S)


def _stage_body(name: str) -> Callable[..., dict[str, Any]]:
    """The task body for stage `name`: report the attempt, run the stage, retry or give up."""

    def body(task: Task, payload: dict[str, Any], run_id: str, track: int | None) -> Any:
        settings = worker_settings()
        attempt = task.request.retries + 1
        base = {"stage": name, "track": track, "attempt": attempt}
        push_event(run_id, {"kind": "attempt", **base})

        def emit(event_type: str, data: dict[str, Any]) -> None:
            push_event(run_id, {"kind": "event", "type": event_type, "data": data})

        try:
            return run_stage(name, payload, settings, track=track, attempt=attempt, emit_fn=emit)
        except Exception as exc:
            # Same policy as the local provider: bad input is final, anything else is retried
            # with backoff until the declared retries are used up.
            policy = dag.stage(name).retry_policy(settings)
            final = isinstance(exc, UserError) or attempt >= policy.max_attempts
            push_event(
                run_id, {"kind": "failed", "final": final, "error": short_error(exc), **base}
            )
            if final:
                raise
            # Not Celery's autoretry_for: its backoff factor is whole seconds (min 1 s); this
            # is the declared policy's formula, as in every provider.
            countdown = policy.delay_s(attempt)
            raise task.retry(exc=exc, countdown=countdown) from exc

    body.__name__ = name
    return body


class StageTask(Task):
    """Wakes the orchestrator as soon as a result is stored, instead of at its next poll."""

    def after_return(
        self, status: str, retval: Any, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        run_id = (kwargs or {}).get("run_id")
        if run_id:
            push_event(run_id, {"kind": "settled", "status": status})


def register_tasks(celery_app: Celery) -> dict[str, Task]:
    """One task per declared stage, named `reflector.<stage>`, generated from the DAG."""
    tasks: dict[str, Task] = {}
    for s in dag.STAGES:
        tasks[s.name] = celery_app.task(
            _stage_body(s.name),
            name=TASK_PREFIX + s.name,
            bind=True,
            base=StageTask,
            # The body decides when to stop, from the declared policy and the worker's settings.
            max_retries=None,
            acks_late=True,
        )
    return tasks


app = configure(Celery("reflector"))
TASKS = register_tasks(app)


# The worker's main process, so each pool child can end with it (set by run_worker).
MASTER_ENV = "REFLECTOR_CELERY_MASTER_PID"


@worker_process_init.connect
def _warm_model(**_: Any) -> None:
    """Load the whisper model once per worker process, before its first transcription.

    First, tie the pool child to the worker's main process: killed, it leaves no children."""
    master = os.environ.get(MASTER_ENV, "")
    if master.isdigit():
        lifeline.bind_to_parent(int(master))
    settings = worker_settings()
    try:
        warm_up(asr_options(settings))
    except Exception as exc:  # noqa: BLE001 - the stage reports a bad model properly later
        log.warning("whisper model not preloaded: %s", exc)


@worker_ready.connect
def _bounded_stop(**_: Any) -> None:
    """SIGTERM and SIGHUP start Celery's warm shutdown, bounded in time (lifeline.bounded_stop;
    acks_late tasks it abandons are redelivered). Celery's own SIGHUP would re-exec it."""
    warm = signal.getsignal(signal.SIGTERM)
    try:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, lifeline.bounded_stop(warm))
    except ValueError:  # not the main thread: keep Celery's defaults
        log.warning("stop signals keep Celery's defaults")


def run_worker(settings: Settings, concurrency: int) -> None:
    """Run a worker in this process (blocks): prefork, `concurrency` child processes."""
    global _worker_settings
    _worker_settings = settings
    os.environ[MASTER_ENV] = str(os.getpid())
    configure(app)
    app.worker_main(
        [
            "worker",
            f"--concurrency={concurrency}",
            "--pool=prefork",
            "--loglevel=INFO",
            f"--hostname=reflector-{os.getpid()}@{socket.gethostname()}",
            "--without-gossip",
            "--without-mingle",
        ]
    )


# --------------------------------------------------------------------------- orchestrator side


class CeleryProvider(LocalProvider):
    """The local provider's scheduler (same graph walk, same RunLog calls) with Celery as the
    executor: only how a stage is started and how its end is noticed differ."""

    name = "celery"

    def __init__(self, settings: Settings, log: RunLog, *, rerun: Iterable[str] = ()) -> None:
        super().__init__(settings, log, rerun=rerun)
        # A fresh client app per run: it reads the broker from the environment now, and
        # sends tasks by name, so the submitter never needs the workers' task objects.
        self._app = configure(Celery("reflector-submit"))
        self._inputs: dict[Node, Any] = {}
        self._final_errors: dict[Node, str] = {}
        self._client = redis.Redis.from_url(broker_url())
        self._key = events_key(log.run_id)

    def _limits(self, st: _State, s: dag.Stage) -> tuple[float, float]:
        soft = s.timeout_s(audio_seconds(st.outputs), self.settings.timeout_overrides)
        return soft, soft + HARD_LIMIT_GRACE_S

    def _start(self, node: Node, st: _State) -> bool:
        name, track = node
        s = dag.stage(name)
        inp = self._input_or_reuse(node, st)
        if inp is None:
            return True
        self._inputs[node] = inp
        self.log.started(name, track, inp)
        soft, hard = self._limits(st, s)
        res = self._app.send_task(
            TASK_PREFIX + name,
            args=(inp.model_dump(mode="json"),),
            kwargs={"run_id": self.log.run_id, "track": track},
            soft_time_limit=soft,
            time_limit=hard,
        )
        st.inflight[res] = node  # type: ignore[index]  # AsyncResult stands in for a Future
        return True

    def _handle(self, item: dict[str, Any]) -> None:
        kind = item.get("kind")
        if kind == "settled":
            return  # only there to end the orchestrator's wait
        if kind == "event":
            self.log.sink(item["type"], item["data"])
            return
        node: Node = (item["stage"], item["track"])
        if node not in self._inputs:
            return  # a stale event (e.g. an earlier run's task redelivered)
        if kind == "attempt" and item["attempt"] > self.log._attempts(*node):
            self.log.started(node[0], node[1], self._inputs[node])
        elif kind == "failed" and item["final"]:
            self._final_errors[node] = item["error"]
        elif kind == "failed":
            self.log.failed(node[0], node[1], item["error"], final=False)

    def _drain_events(self, block_s: float = 0.0) -> None:
        if block_s > 0:
            first = self._client.blpop([self._key], timeout=block_s)
            if first is None:
                return
            self._handle(json.loads(first[1]))
        while (raw := self._client.lpop(self._key)) is not None:
            self._handle(json.loads(raw))

    def _finish_result(self, res: AsyncResult, st: _State) -> None:
        node: Node = st.inflight.pop(res)  # type: ignore[call-overload]
        name, track = node
        # The worker pushes its events before the result is stored: drain them first.
        self._drain_events()
        if res.successful():
            out = res.result
            self._record(node, self.log.done(name, track, out), st)
        else:
            error = self._final_errors.pop(node, None) or _result_error(res)
            self.log.failed(name, track, error, final=True)
            st.failed[node] = error
            if dag.stage(name).critical and st.fatal is None:
                st.fatal = (name, error)
        res.forget()

    def _dispatch_ready(self, st: _State) -> None:
        progressed = True
        while progressed:
            progressed = False
            for node in self._ready(st):
                if node in st.done or node in st.inflight.values():
                    continue
                self._start(node, st)
                progressed = True
                if dag.stage(node[0]).fans_out and node in st.done:
                    break  # track count just became known: recompute the graph

    def _check_workers(self) -> None:
        """Fail fast with a clear line instead of queueing stages nobody will ever take."""
        where = maybe_sanitize_url(broker_url())
        try:
            self._client.ping()
            replies = self._app.control.ping(timeout=PING_TIMEOUT_S, limit=1)
        except (redis.RedisError, OSError) as exc:
            raise UserError(f"celery broker {where}: unreachable ({exc})") from None
        if not replies:
            raise UserError(
                f"celery broker {where}: no worker answered; start one with `reflector worker"
                " celery` (same CELERY_BROKER_URL and REFLECTOR_DATA_DIR)"
            )

    def run(self) -> RunOutcome:
        st = _State()
        try:
            self._check_workers()
            while True:
                if st.fatal is None:
                    self._dispatch_ready(st)
                if not st.inflight:
                    break
                self._drain_events(block_s=POLL_S)
                for res in [r for r in list(st.inflight) if r.ready()]:  # type: ignore[attr-defined]
                    self._finish_result(res, st)  # type: ignore[arg-type]
        finally:
            self.close()
        return st.outcome()

    def close(self, kill: bool = False) -> None:
        try:
            self._drain_events()
            self._client.delete(self._key)
        except redis.RedisError:
            pass  # the broker is gone: nothing left to drain or clean up
        self._client.close()
        self._app.close()


def _result_error(res: AsyncResult) -> str:
    """A failure the worker could not report itself (hard time limit, killed child)."""
    exc = res.result
    if isinstance(exc, BaseException):
        return f"{type(exc).__name__}: {exc}"
    return f"task {res.id} ended {res.state}"
