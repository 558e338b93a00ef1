"""A run's bookkeeping, shared by every provider: stage checkpoints, STAGE events and hooks.

Providers decide *where* a stage runs; this decides what is recorded about it, so all three
leave identical rows behind.
"""

from __future__ import annotations

import time
import traceback
from typing import Any

from pydantic import BaseModel

from reflector_cli.core import models as m
from reflector_cli.core.config import Settings
from reflector_cli.core.errors import UserError
from reflector_cli.pipeline import dag
from reflector_cli.pipeline.versioning import canonical_json, code_version, input_hash, sha256_text
from reflector_cli.storage import Storage, open_storage
from reflector_cli.store import hooks
from reflector_cli.store.events import EventSink
from reflector_cli.store.repo import Store


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


class RunLog:
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

    def _stage_event(self, name: str, track: int | None, state: str, attempt: int) -> None:
        t0 = self._t0.get((name, track))
        elapsed = round(time.monotonic() - t0, 3) if t0 else 0.0
        data: dict[str, Any] = {"stage": name, "state": state, "attempt": attempt}
        data["track"] = track
        data["elapsed_s"] = elapsed
        self.sink("STAGE", data)

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
        data = _loads(row["output"])
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

    def started(self, name: str, track: int | None, inp: BaseModel) -> int:
        self._t0[(name, track)] = time.monotonic()
        attempt = self.store.stage_started(
            self.run_id, name, track, input_hash(inp), code_version(name), canonical_json(inp)
        )
        self._stage_event(name, track, "started", attempt)
        return attempt

    def done(self, name: str, track: int | None, out: BaseModel | dict[str, Any]) -> BaseModel:
        model = dag.stage(name).output_model.model_validate(out)
        text = canonical_json(model)
        self.store.stage_finished(
            self.run_id, name, track, "done", output=text, output_hash=sha256_text(text)[:32]
        )
        state = "skipped" if getattr(model, "status", None) == "skipped" else "done"
        self._stage_event(name, track, state, self._attempts(name, track))
        self._after(name, model)
        return model

    def failed(self, name: str, track: int | None, error: str, *, final: bool) -> None:
        status = "failed" if final else "retrying"
        self.store.stage_finished(self.run_id, name, track, status, error=error)
        self._stage_event(
            name, track, "failed" if final else "retrying", self._attempts(name, track)
        )

    def _attempts(self, name: str, track: int | None) -> int:
        row = self.store._one(
            "SELECT attempts FROM stage_runs WHERE run_id = ? AND stage = ? AND track = ?",
            (self.run_id, name, -1 if track is None else track),
        )
        return int(row["attempts"]) if row else 0

    def _after(self, name: str, out: BaseModel) -> None:
        if observe := hooks.ON_OUTPUT.get(name):
            observe(self, out)
        if (commit := hooks.ON_DONE.get(name)) and self.hooks:
            commit(self, out)


def _loads(text: str) -> Any:
    import json

    return json.loads(text)
