"""One run's life in the store, for every kind of run (process, shadow, replay, engine submit
and sync): begin, guard the execution, conclude, and reap runs whose process is gone.

Begin writes the run row, marks a primary run's transcript `processing` and emits STATUS;
conclude records the outcome on the run and (primary runs) the transcript and emits STATUS.
A run stopped by a signal is marked `interrupted` by its own process; one killed outright is
found later (`running`, but its recording's lock is free). Either way the transcript goes back
to `idle` unless it had ended, and the finished stages stay for the next run to reuse.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from reflector_cli.core import lifeline
from reflector_cli.core import models as m
from reflector_cli.core.config import Settings
from reflector_cli.core.errors import one_line
from reflector_cli.core.lock import lock_if_free
from reflector_cli.store.events import EventSink, Observer
from reflector_cli.store.repo import Store

INTERRUPTED = "interrupted"
KILLED = "its process ended before the run finished (killed)"

T = TypeVar("T")


class Outcome(Protocol):
    """What a provider's run ends with (providers.local.RunOutcome)."""

    status: str
    error_stage: str | None
    error: str | None


@dataclass
class Prior:
    """The recording's state before a new run: its transcript and latest run."""

    transcript: dict[str, Any] | None
    latest: dict[str, Any] | None

    @property
    def ended(self) -> bool:
        return bool(self.transcript and self.transcript["status"] == "ended")

    def finished(self, pipe: m.PipelineInput) -> bool:
        """Nothing to do: the last run got through consent cleanup and delivery too (not just
        finalize) with the same settings (a changed one, e.g. --crosstalk off, is a new run)."""
        return (
            self.ended
            and self.latest is not None
            and self.latest["status"] == "ended"
            and _same_settings(self.latest["input"], pipe)
        )

    @property
    def result_run(self) -> str | None:
        """The run whose result the transcript holds (else the latest run)."""
        if self.transcript and self.transcript["run_id"]:
            return str(self.transcript["run_id"])
        return str(self.latest["id"]) if self.latest else None


def prior(store: Store, pipe: m.PipelineInput) -> Prior:
    """Make sure the recording's rows exist and read what an earlier run left."""
    store.ensure_recording(pipe)
    latest = store.runs(1, pipe.recording_id)
    return Prior(store.transcript(pipe.transcript_id), latest[0] if latest else None)


def _same_settings(stored_input: str, pipe: m.PipelineInput) -> bool:
    """The stored run had the same input, delivery aside (shadow runs never deliver)."""
    stored = m.PipelineInput.model_validate_json(stored_input)
    return stored.model_copy(update={"deliver": pipe.deliver}) == pipe


@dataclass
class Lifecycle:
    """A run being recorded; `primary` runs own the transcript's status (shadows never)."""

    store: Store
    pipe: m.PipelineInput
    run_id: str
    sink: EventSink
    primary: bool
    # The transcript held an earlier run's result: a failure here must not mark it error.
    was_ended: bool

    @classmethod
    def begin(
        cls,
        store: Store,
        pipe: m.PipelineInput,
        provider: str,
        *,
        role: str = "primary",
        force: bool = False,
        replay_of: str | None = None,
        observer: Observer | None = None,
    ) -> Lifecycle:
        """Start a new run of `pipe`; the caller holds the recording's lock."""
        # Here, not at the top: `runs`/`show` import this module and need no pipeline.
        from reflector_cli.pipeline.runinput import new_run_id

        before = store.transcript(pipe.transcript_id)
        was_ended = bool(before and before["status"] == "ended")
        reap_locked(store, pipe.recording_id)
        run_id = new_run_id()
        store.create_run(run_id, pipe, provider, role=role, force=force, replay_of=replay_of)
        sink = EventSink(store, pipe.transcript_id, run_id, observer)
        lc = cls(store, pipe, run_id, sink, role == "primary", was_ended)
        if lc.primary and not was_ended:
            store.set_status(pipe.transcript_id, "processing")
        sink("STATUS", {"value": "processing"})
        return lc

    @classmethod
    def attach(
        cls, store: Store, run: dict[str, Any], observer: Observer | None = None
    ) -> Lifecycle:
        """Take up a stored run begun by another process (an engine run followed or synced)."""
        pipe = m.PipelineInput.model_validate_json(run["input"])
        run_id = str(run["id"])
        t = store.transcript(pipe.transcript_id)
        # Ended by this very run (its finalize committed) is not an earlier result.
        was_ended = bool(t and t["status"] == "ended" and t["run_id"] != run_id)
        sink = EventSink(store, pipe.transcript_id, run_id, observer)
        return cls(store, pipe, run_id, sink, run["role"] == "primary", was_ended)

    def guard(self, execute: Callable[[], T]) -> T:
        """Call `execute` (a provider's run or submit); a stop or crash is recorded on the run
        so it is never left `running` with nobody at work, then re-raised."""
        try:
            return execute()
        except KeyboardInterrupt as exc:
            # Ctrl-C, SIGTERM, SIGHUP: finished stages stay; the same command resumes.
            with lifeline.deferred_stop_signals():
                run = self.store.run(self.run_id) or {"id": self.run_id}
                # An engine run goes on without its submitter: left as it is, the same
                # command follows it again.
                if not run.get("engine_run_id"):
                    mark_interrupted(self.store, run, f"stopped by {exc or 'SIGINT'}")
            raise
        except BaseException as exc:
            # Not a stage failure (those are outcomes): record it so the run isn't left open.
            # A full disk must not hide the first error. One transaction: the run and its
            # transcript both say error, or (nothing written) the run stays `running` and the
            # next command to look reaps both (reap_interrupted), never half of it.
            with contextlib.suppress(sqlite3.Error), self.store.transaction():
                self.store.finish_run(
                    self.run_id, "error", None, one_line(f"{type(exc).__name__}: {exc}")
                )
                if self.primary and not self.was_ended:
                    tid = self.pipe.transcript_id
                    self.store.set_status(tid, "error", None, one_line(str(exc)))
            raise

    def conclude(self, outcome: Outcome) -> None:
        """Record how the run ended on its row and (primary runs) the transcript."""
        if outcome.status == "ended":
            self.store.finish_run(self.run_id, "ended")
            return
        stage, error = outcome.error_stage, outcome.error
        with self.store.transaction():
            self.store.finish_run(self.run_id, "error", stage, error)
            if self.primary and not self.was_ended:
                self.store.set_status(self.pipe.transcript_id, "error", stage, error)
        self.sink("STATUS", {"value": "error", "stage": stage, "message": error})

    def run(self, execute: Callable[[], Outcome]) -> Outcome:
        """`guard` a provider's run, then `conclude` with its outcome."""
        outcome = self.guard(execute)
        self.conclude(outcome)
        return outcome


# --------------------------------------------------------------------------- interrupted runs


def mark_interrupted(store: Store, run: dict[str, Any], reason: str) -> None:
    """Record `run` as interrupted; a primary run's transcript stops being `processing` (in
    the same transaction: never an interrupted run beside a transcript still processing)."""
    tid = run.get("transcript_id")
    primary = run.get("role", "primary") == "primary" and bool(tid)
    with store.transaction():
        store.finish_run(str(run["id"]), INTERRUPTED, None, reason)
        row = store.transcript(str(tid)) if primary else None
        freed = bool(row and row["status"] == "processing")
        if freed:
            store.set_status(str(tid), "idle")
    if freed:
        EventSink(store, str(tid), str(run["id"]))("STATUS", {"value": "idle"})


def running_runs(
    store: Store, recording_id: str | None = None, *, engine: bool = True
) -> list[dict[str, Any]]:
    """Runs marked `running` (of one recording); `engine=False` leaves out engine runs."""
    query = "SELECT * FROM runs WHERE status = 'running'"
    args: tuple[str, ...] = ()
    if not engine:
        query += " AND engine_run_id IS NULL"
    if recording_id:
        query, args = query + " AND recording_id = ?", (recording_id,)
    return store._all(query, args)


def reap_interrupted(store: Store, settings: Settings, recording_id: str | None = None) -> int:
    """Mark `running` runs whose process is gone (their recording lock is free) interrupted.

    Runs on an engine (Hatchet, with an engine run id) outlive their submitter and are left to
    be followed. Best effort: a read-only data dir just reports what is stored. Returns how
    many runs were marked.
    """
    marked = 0
    try:
        for run in running_runs(store, recording_id, engine=False):
            with lock_if_free(settings, str(run["recording_id"])) as free:
                if free:
                    mark_interrupted(store, run, KILLED)
                    marked += 1
    except (sqlite3.OperationalError, OSError):
        pass  # read-only or full: nothing we can fix from here, the listing still works
    return marked


def reap_locked(store: Store, recording_id: str) -> None:
    """The caller holds `recording_id`'s lock and starts a fresh run: any run of it still
    marked running was killed (engine runs too: this run replaces them, nobody follows them)."""
    for run in running_runs(store, recording_id):
        mark_interrupted(store, run, KILLED)
