"""The recorder: applies a run's stage records (attempt started, failed, done, event) to SQLite.

Workers report what happened through their provider's transport (an in-process queue, a Redis
list, the Hatchet event stream); the submitting process hands each record to `Recorder.apply`,
the only writer of stage rows, STAGE events and stage hooks. Applying a record twice changes
nothing, so a transport may deliver one again. It also reuses matching checkpoints.
"""

from __future__ import annotations

import json
import time
import traceback
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter

from reflector_cli.core import models as m
from reflector_cli.core.config import Settings
from reflector_cli.core.errors import UserError
from reflector_cli.pipeline import dag
from reflector_cli.pipeline.versioning import canonical_json, code_version, input_hash, sha256_text
from reflector_cli.storage import Storage, open_storage
from reflector_cli.store import checkpoints, hooks
from reflector_cli.store.events import EventSink
from reflector_cli.store.repo import Store


class _Attempt(m.Model):
    stage: str
    track: int | None = None
    attempt: int


class Started(_Attempt):
    """Attempt `attempt` of a stage began, with this input (JSON)."""

    kind: Literal["started"] = "started"
    input: dict[str, Any]


class Failed(_Attempt):
    """An attempt failed; `final`: no attempt follows (the stage failed)."""

    kind: Literal["failed"] = "failed"
    error: str
    final: bool


class Done(_Attempt):
    """The stage finished with this output (JSON)."""

    kind: Literal["done"] = "done"
    output: dict[str, Any]


class Event(m.Model):
    """An event a stage emitted (PROGRESS, ...); `id` makes a repeated delivery recognisable."""

    kind: Literal["event"] = "event"
    type: str
    data: dict[str, Any]
    id: str = Field(default_factory=lambda: uuid.uuid4().hex)


Record = Annotated[Started | Failed | Done | Event, Field(discriminator="kind")]
RECORD: TypeAdapter[Started | Failed | Done | Event] = TypeAdapter(Record)


def artifact_keys(value: Any) -> list[str]:
    """Every storage key an output refers to (fields named `key` or `*_key`)."""
    found: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, str) and (k == "key" or k.endswith("_key")):
                found.append(v)
            else:
                found.extend(artifact_keys(v))
    elif isinstance(value, list):
        for v in value:
            found.extend(artifact_keys(v))
    return found


def short_error(exc: BaseException) -> str:
    if isinstance(exc, UserError):
        return str(exc)
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" (at {last[0].name})" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"


class Recorder:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        pipe: m.PipelineInput,
        run_id: str,
        sink: EventSink,
        *,
        reuse: bool = True,
        hooks: bool = True,
    ) -> None:
        self.store = store
        self.settings = settings
        self.pipe = pipe
        self.run_id = run_id
        self.sink = sink
        self.reuse = reuse
        # Replay --from: outputs of the replayed run taken as-is for stages before the cut.
        self.pinned: dict[tuple[str, int | None], dict[str, Any]] = {}
        self.hooks = hooks
        self.storage: Storage = open_storage(settings.storage_url, settings.data_dir)
        self._t0: dict[tuple[str, int | None], float] = {}
        self._seen: set[str] = set()  # ids of the events applied (a repeat is dropped)

    # ------------------------------------------------------------------ records

    def apply(self, rec: Started | Failed | Done | Event) -> BaseModel | None:
        """Write one record; the output model for Done. A record applied before (or older than
        what the row already holds) changes nothing."""
        if isinstance(rec, Event):
            if rec.id not in self._seen:
                self._seen.add(rec.id)
                self.sink(rec.type, rec.data)
            return None
        if isinstance(rec, Started):
            self._started(rec)
            return None
        if isinstance(rec, Failed):
            self._failed(rec)
            return None
        return self._done(rec)

    def _started(self, rec: Started) -> None:
        text = canonical_json(rec.input)
        fresh = checkpoints.attempt_started(
            self.store,
            self.run_id,
            rec.stage,
            rec.track,
            rec.attempt,
            input_hash=sha256_text(text)[:32],
            code_version=code_version(rec.stage),
            inp=text,
        )
        if fresh:
            self._t0[(rec.stage, rec.track)] = time.monotonic()
            self._stage_event(rec.stage, rec.track, "started", rec.attempt)

    def _failed(self, rec: Failed) -> None:
        status = "failed" if rec.final else "retrying"
        row = checkpoints.stage_row(self.store, self.run_id, rec.stage, rec.track)
        attempts = int(row["attempts"]) if row else 0
        if row and (
            row["status"] in ("done", "failed")
            or attempts > rec.attempt
            or (row["status"] == status and attempts == rec.attempt)
        ):
            return  # already recorded, or a later attempt has started since
        self.store.stage_finished(self.run_id, rec.stage, rec.track, status, error=rec.error)
        self._stage_event(rec.stage, rec.track, status, attempts)

    def _done(self, rec: Done) -> BaseModel:
        model = dag.stage(rec.stage).output_model.model_validate(rec.output)
        row = checkpoints.stage_row(self.store, self.run_id, rec.stage, rec.track)
        if row and row["status"] == "done":
            return model
        text = canonical_json(model)
        self.store.stage_finished(
            self.run_id,
            rec.stage,
            rec.track,
            "done",
            output=text,
            output_hash=sha256_text(text)[:32],
        )
        state = "skipped" if getattr(model, "status", None) == "skipped" else "done"
        self._stage_event(rec.stage, rec.track, state, self.attempts(rec.stage, rec.track))
        self._after(rec.stage, model)
        return model

    def attempts(self, name: str, track: int | None) -> int:
        """Attempts recorded so far for the stage in this run."""
        return checkpoints.stage_attempts(self.store, self.run_id, name, track)

    def _stage_event(self, name: str, track: int | None, state: str, attempt: int) -> None:
        t0 = self._t0.get((name, track))
        elapsed = round(time.monotonic() - t0, 3) if t0 else 0.0
        data: dict[str, Any] = {"stage": name, "state": state, "attempt": attempt}
        data["track"] = track
        data["elapsed_s"] = elapsed
        self.sink("STAGE", data)

    # ------------------------------------------------------------------ checkpoints

    def try_reuse(self, name: str, track: int | None, inp: BaseModel) -> BaseModel | None:
        """A finished checkpoint with the same input and code whose artifacts still exist."""
        ih, cv = input_hash(inp), code_version(name)
        pinned = self.pinned.get((name, track))
        if pinned is not None:
            row = pinned
        elif not self.reuse:
            return None
        else:
            row = self.store.reusable(self.pipe.recording_id, name, track, ih, cv)
        if row is None or row["output"] is None:
            return None
        data = json.loads(row["output"])
        if pinned is None and not all(self.storage.exists(k) for k in artifact_keys(data)):
            return None
        out = dag.stage(name).output_model.model_validate(data)
        self.store.stage_finished(
            self.run_id,
            name,
            track,
            "done",
            output=row["output"],
            output_hash=row["output_hash"],
            reused_from=row["run_id"],
            input_hash=ih,
            code_version=cv,
            inp=canonical_json(inp),
        )
        self.sink(
            "STAGE",
            {"stage": name, "state": "reused", "attempt": 0, "track": track, "elapsed_s": 0.0},
        )
        self._after(name, out)
        return out

    def pinned_stages(self) -> set[str]:
        return {name for name, _ in self.pinned}

    def _after(self, name: str, out: BaseModel) -> None:
        if observe := hooks.ON_OUTPUT.get(name):
            observe(self, out)
        if (commit := hooks.ON_DONE.get(name)) and self.hooks:
            commit(self, out)
