"""The Celery provider: one generic task per DAG stage, run by workers on a Redis broker.

The shared scheduler (`scheduler.py`) dispatches each ready stage attempt as its own task (no
canvas): the per-track fan-out is only known after `get_recording`, non-critical stages may fail
without stopping their children, and checkpoints are reused stage by stage; a static
chain/group/chord expresses none of that. Retries are the scheduler's too (the stage's
RetryPolicy), so the SQLite rows equal the local provider's. A worker reports an attempt's
start and its stage's events as recorder records on a per-run Redis list the submitter drains
in order (a list, unlike pub/sub, keeps what was sent while nobody was listening); the
attempt's end is its task result. This is the only module that imports celery.
"""

from __future__ import annotations

import contextlib
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
from pydantic import BaseModel, ValidationError

from reflector_cli.core import lifeline
from reflector_cli.core.config import Settings, load_settings
from reflector_cli.core.errors import UserError
from reflector_cli.pipeline import dag
from reflector_cli.pipeline.execute import asr_options, run_stage, warm_up
from reflector_cli.providers.recorder import RECORD, Event, Recorder, Started, short_error
from reflector_cli.providers.scheduler import Completion, Node, Scheduler

DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
TASK_PREFIX = "reflector."
EVENTS_TTL_S = 24 * 3600
# Grace between the soft limit (the stage sees an exception, may be retried) and the kill.
HARD_LIMIT_GRACE_S = 30.0
PING_TIMEOUT_S = 2.0
FAILED_KEY = "stage_failed"  # a task result holding an attempt's error instead of an output

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


def push_record(run_id: str, item: BaseModel | dict[str, Any]) -> None:
    key = events_key(run_id)
    client = _events_client()
    text = item.model_dump_json() if isinstance(item, BaseModel) else json.dumps(item)
    client.rpush(key, text)
    client.expire(key, EVENTS_TTL_S)


def _stage_body(name: str) -> Callable[..., dict[str, Any]]:
    """The task body for stage `name`: report the attempt, run it once, return its output or
    its failure (the submitter's scheduler decides whether another attempt follows)."""

    def body(payload: dict[str, Any], run_id: str, track: int | None, attempt: int = 1) -> Any:
        settings = worker_settings()
        push_record(run_id, Started(stage=name, track=track, attempt=attempt, input=payload))

        def emit(event_type: str, data: dict[str, Any]) -> None:
            push_record(run_id, Event(type=event_type, data=data))

        try:
            return run_stage(name, payload, settings, track=track, attempt=attempt, emit_fn=emit)
        except Exception as exc:  # noqa: BLE001 - reported as the attempt's result
            return {FAILED_KEY: short_error(exc), "permanent": isinstance(exc, UserError)}

    body.__name__ = name
    return body


class StageTask(Task):
    """Wakes the submitter as soon as a result is stored, instead of at its next poll."""

    def after_return(
        self, status: str, retval: Any, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        run_id = (kwargs or {}).get("run_id")
        if run_id:
            push_record(run_id, {"kind": "settled"})


def register_tasks(celery_app: Celery) -> dict[str, Task]:
    """One task per declared stage, named `reflector.<stage>`, generated from the DAG."""
    tasks: dict[str, Task] = {}
    for s in dag.STAGES:
        tasks[s.name] = celery_app.task(
            _stage_body(s.name),
            name=TASK_PREFIX + s.name,
            base=StageTask,
            max_retries=0,  # attempts are the submitter's (see _stage_body)
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
    try:
        lifeline.bound_stop_signals((signal.SIGTERM, signal.SIGHUP))
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


# --------------------------------------------------------------------------- submitter side


class CeleryExecutor:
    """Attempts as Celery tasks; the worker's records arrive on the run's Redis list."""

    reports_start = True  # the worker reports when it takes the task

    def __init__(self, settings: Settings, log: Recorder) -> None:
        # A fresh client app per run: it reads the broker from the environment now, and
        # sends tasks by name, so the submitter never needs the workers' task objects.
        self._app = configure(Celery("reflector-submit"))
        self._client = redis.Redis.from_url(broker_url())
        self._key = events_key(log.run_id)
        self._run_id = log.run_id
        self._inflight: dict[str, tuple[AsyncResult, Node]] = {}

    def start(self) -> None:
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

    def submit(self, node: Node, inp: BaseModel, attempt: int, timeout_s: float) -> bool:
        name, track = node
        res = self._app.send_task(
            TASK_PREFIX + name,
            args=(inp.model_dump(mode="json"),),
            kwargs={"run_id": self._run_id, "track": track, "attempt": attempt},
            soft_time_limit=timeout_s,
            time_limit=timeout_s + HARD_LIMIT_GRACE_S,
        )
        self._inflight[res.id] = (res, node)
        return True

    def wait(self, timeout_s: float) -> list[Started | Event | Completion]:
        items: list[Started | Event | Completion] = []
        if timeout_s > 0 and (first := self._client.blpop([self._key], timeout=timeout_s)):
            items.extend(self._parse(first[1]))
        ended = [rid for rid, (res, _) in self._inflight.items() if res.ready()]
        # The worker pushes its records before the result is stored: drain them after.
        while (raw := self._client.lpop(self._key)) is not None:
            items.extend(self._parse(raw))
        items.extend(self._completion(*self._inflight.pop(rid)) for rid in ended)
        return items

    def _parse(self, raw: bytes) -> list[Started | Event | Completion]:
        try:
            rec = RECORD.validate_json(raw)
        except ValidationError:
            return []  # a wake-up ("settled"), not a record
        return [rec] if isinstance(rec, Started | Event) else []

    def _completion(self, res: AsyncResult, node: Node) -> Completion:
        try:
            if not res.successful():
                return Completion(node, error=_result_error(res))
            out = res.result
            if isinstance(out, dict) and FAILED_KEY in out:
                return Completion(node, error=out[FAILED_KEY], permanent=bool(out["permanent"]))
            return Completion(node, output=out)
        finally:
            res.forget()

    def close(self, kill: bool) -> None:
        with contextlib.suppress(redis.RedisError):  # the broker is gone: nothing to clean up
            self._client.delete(self._key)
        self._client.close()
        self._app.close()


class CeleryProvider(Scheduler):
    """The shared scheduler with Celery as the executor."""

    name = "celery"

    def __init__(self, settings: Settings, log: Recorder, *, rerun: Iterable[str] = ()) -> None:
        super().__init__(settings, log, CeleryExecutor(settings, log), rerun=rerun)


def _result_error(res: AsyncResult) -> str:
    """A failure the worker could not report itself (hard time limit, killed child)."""
    exc = res.result
    if isinstance(exc, BaseException):
        return f"{type(exc).__name__}: {exc}"
    return f"task {res.id} ended {res.state}"
