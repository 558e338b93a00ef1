"""Process one recording end to end with a chosen provider: lock, run bookkeeping, result.

This is the provider-agnostic driver the CLI calls; providers only execute the DAG.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reflector_cli.core import lifeline
from reflector_cli.core import models as m
from reflector_cli.core.config import Settings
from reflector_cli.core.errors import UserError, one_line
from reflector_cli.core.lock import recording_lock
from reflector_cli.pipeline.runinput import new_run_id, prepare_input
from reflector_cli.providers.recorder import Recorder
from reflector_cli.runs.compare import ComparisonReport, compare_runs, store_comparison
from reflector_cli.runs.runstate import KILLED, mark_interrupted
from reflector_cli.store.events import EventSink, Observer
from reflector_cli.store.repo import Store
from reflector_cli.store.results import result_view


@dataclass
class ProcessResult:
    view: dict[str, Any]
    run_id: str | None
    reused: bool
    error_stage: str | None = None
    error: str | None = None
    shadow: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def make_provider(name: str, settings: Settings, log: Recorder, rerun: set[str]) -> Any:
    if name == "local":
        from reflector_cli.providers.local import LocalProvider

        return LocalProvider(settings, log, rerun=rerun)
    if name == "hatchet":
        from reflector_cli.providers.hatchet import HatchetProvider

        return HatchetProvider(settings, log, rerun=rerun)
    if name == "celery":
        from reflector_cli.providers.celery_app import CeleryProvider

        return CeleryProvider(settings, log, rerun=rerun)
    raise UserError(f"provider {name!r}: not available in this build (use local)")


def process_recording(
    source: str,
    settings: Settings,
    *,
    provider: str | None = None,
    force: bool = False,
    deliver: bool = True,
    observer: Observer | None = None,
    role: str = "primary",
    shadow: str | None = None,
) -> ProcessResult:
    """Process `source`; a non-primary `role` (e.g. "shadow" for comparisons) records its run
    and stage rows but leaves the stored transcript and its status alone.

    `shadow` (or DURABLE_WORKFLOW_SHADOW_MODE) then runs the same recording on a second
    provider and stores a comparison; the shadow's failure never fails this result."""
    pipe = prepare_input(source, settings).model_copy(update={"deliver": deliver})
    primary = provider or settings.provider
    store = Store(settings.db_path)
    try:
        with recording_lock(settings, pipe.recording_id):
            result = _process_locked(pipe, settings, store, primary, force, observer, role)
    finally:
        store.close()
    shadow = shadow or (shadow_provider(settings, primary) if settings.shadow_mode else None)
    if shadow and role == "primary" and result.ok and not result.reused:
        result.shadow = _run_shadow(source, settings, primary, result.run_id, shadow)
    return result


def shadow_provider(settings: Settings, primary: str) -> str:
    """The configured shadow, else "the other engine" (hatchet <-> celery; local -> hatchet)."""
    if settings.shadow_provider and settings.shadow_provider != primary:
        return settings.shadow_provider
    return {"hatchet": "celery", "celery": "hatchet"}.get(primary, "hatchet")


def _run_shadow(
    source: str, settings: Settings, primary: str, primary_run: str | None, shadow: str
) -> dict[str, Any]:
    try:
        res = process_recording(
            source, settings, provider=shadow, force=True, deliver=False, role="shadow"
        )
        if primary_run is None or res.run_id is None:
            return {"provider": shadow, "run_id": res.run_id, "agree": None, "error": res.error}
        store = Store(settings.db_path)
        try:
            report = compare_runs(store, {primary: primary_run, shadow: res.run_id})
            store_comparison(store, report)
        finally:
            store.close()
        return {
            "provider": shadow,
            "run_id": res.run_id,
            "agree": report.agree,
            "comparison_id": report.id,
            "first_difference": report.first_difference,
            "error": res.error,
        }
    except Exception as exc:  # noqa: BLE001 - a shadow never fails the primary
        return {
            "provider": shadow,
            "run_id": None,
            "agree": None,
            "error": one_line(f"{type(exc).__name__}: {exc}"),
        }


def _process_locked(
    pipe: m.PipelineInput,
    settings: Settings,
    store: Store,
    provider: str,
    force: bool,
    observer: Observer | None,
    role: str = "primary",
) -> ProcessResult:
    primary = role == "primary"
    store.ensure_recording(pipe)
    before = store.transcript(pipe.transcript_id)
    was_ended = bool(before and before["status"] == "ended")
    latest = store.runs(1, pipe.recording_id)
    # Ended means the last run got through consent cleanup and delivery too, not just finalize.
    finished = was_ended and bool(latest) and latest[0]["status"] == "ended"
    # A changed setting (e.g. --crosstalk off) is a new run; its unchanged stages are reused.
    finished = finished and _same_settings(latest[0]["input"], pipe)
    if finished and not force:
        return ProcessResult(result_view(store, pipe.transcript_id), before["run_id"], True)
    if latest and not force and _engine_run_to_follow(latest[0], pipe, provider, role):
        resumed = _follow_earlier(latest[0], pipe, settings, store, was_ended, observer)
        if resumed.ok:
            return resumed
        # It failed while nobody watched (now recorded): this command asks for a fresh try.
    # We hold the lock, so any run of this recording still marked running was killed.
    for stale in store._all(
        "SELECT * FROM runs WHERE recording_id = ? AND status = 'running'", (pipe.recording_id,)
    ):
        mark_interrupted(store, stale, KILLED)
    run_id = new_run_id()
    store.create_run(run_id, pipe, provider, role=role, force=force)
    sink = EventSink(store, pipe.transcript_id, run_id, observer)
    if not was_ended and primary:
        store.set_status(pipe.transcript_id, "processing")
    sink("STATUS", {"value": "processing"})
    # Hooks commit the transcript: only the primary run may do that.
    log = Recorder(store, settings, pipe, run_id, sink, reuse=not force, hooks=primary)
    return _conclude(
        store, pipe, log, was_ended, lambda: make_provider(provider, settings, log, set()).run()
    )


def _same_settings(stored_input: str, pipe: m.PipelineInput) -> bool:
    """The stored run had the same input, delivery aside (shadow runs never deliver)."""
    stored = m.PipelineInput.model_validate_json(stored_input)
    return stored.model_copy(update={"deliver": pipe.deliver}) == pipe


def _engine_run_to_follow(
    run: dict[str, Any], pipe: m.PipelineInput, provider: str, role: str
) -> bool:
    """An unfinished run that lives on an engine (it outlives its submitter), same input."""
    return (
        run["status"] in ("running", "submitted")
        and bool(run.get("engine_run_id"))
        and run["provider"] == provider
        and run["role"] == role
        and m.PipelineInput.model_validate_json(run["input"]) == pipe
    )


def _follow_earlier(
    run: dict[str, Any],
    pipe: m.PipelineInput,
    settings: Settings,
    store: Store,
    was_ended: bool,
    observer: Observer | None,
) -> ProcessResult:
    """Pick up a run whose submitter was killed (or that was submitted with --no-wait)."""
    run_id, primary = str(run["id"]), run["role"] == "primary"
    sink = EventSink(store, pipe.transcript_id, run_id, observer)
    log = Recorder(store, settings, pipe, run_id, sink, reuse=False, hooks=primary)
    prov = make_provider(run["provider"], settings, log, set())
    return _conclude(store, pipe, log, was_ended, lambda: prov.reattach(run))


def _conclude(
    store: Store,
    pipe: m.PipelineInput,
    log: Recorder,
    was_ended: bool,
    execute: Callable[[], Any],
) -> ProcessResult:
    """Run `execute` (a provider's run) and record its outcome on the run and transcript."""
    run_id, primary, sink = log.run_id, log.hooks, log.sink
    try:
        outcome = execute()
    except KeyboardInterrupt as exc:
        # Ctrl-C, SIGTERM, SIGHUP: finished stages stay; the same command resumes.
        with lifeline.deferred_stop_signals():
            run = store.run(run_id) or {"id": run_id}
            # An engine run goes on without its submitter: left "running", the same command
            # follows it again (see _engine_run_to_follow).
            if not run.get("engine_run_id"):
                mark_interrupted(store, run, f"stopped by {exc or 'SIGINT'}")
        raise
    except BaseException as exc:
        # Not a stage failure (those are outcomes): record it so the run isn't left "running".
        with contextlib.suppress(sqlite3.Error):  # a full disk must not hide the first error
            store.finish_run(run_id, "error", None, one_line(f"{type(exc).__name__}: {exc}"))
            if not was_ended and primary:
                store.set_status(pipe.transcript_id, "error", None, one_line(str(exc)))
        raise
    if outcome.status == "ended":
        store.finish_run(run_id, "ended")
        return ProcessResult(result_view(store, pipe.transcript_id), run_id, False)
    store.finish_run(run_id, "error", outcome.error_stage, outcome.error)
    if not was_ended and primary:
        store.set_status(pipe.transcript_id, "error", outcome.error_stage, outcome.error)
    sink("STATUS", {"value": "error", "stage": outcome.error_stage, "message": outcome.error})
    view = result_view(store, pipe.transcript_id)
    view["run_id"] = run_id
    return ProcessResult(view, run_id, False, outcome.error_stage, outcome.error)


# --------------------------------------------------------------------------- compare


def _latest_finished(store: Store, recording_id: str, provider: str) -> str | None:
    row = store._one(
        "SELECT id FROM runs WHERE recording_id = ? AND provider = ? AND status = 'ended'"
        " ORDER BY created_at DESC LIMIT 1",
        (recording_id, provider),
    )
    return row["id"] if row else None


def run_compare(
    source: str, providers: list[str], settings: Settings, reuse: bool
) -> ComparisonReport:
    """Run (or with `reuse`, reuse the latest finished run of) the recording on each provider,
    then compare and store the report. The configured provider's run (else the first) is the
    primary one; the others run as shadows and never touch the stored transcript."""
    providers = list(dict.fromkeys(providers))
    if len(providers) < 2:
        raise UserError("compare: name at least two providers")
    recording_id = prepare_input(source, settings).recording_id
    primary = settings.provider if settings.provider in providers else providers[0]
    run_ids: dict[str, str] = {}
    store = Store(settings.db_path)
    try:
        for p in providers:
            found = _latest_finished(store, recording_id, p) if reuse else None
            if found is None:
                res = process_recording(
                    source,
                    settings,
                    provider=p,
                    force=True,
                    deliver=False,
                    role="primary" if p == primary else "shadow",
                )
                if res.run_id is None:
                    raise UserError(f"compare: provider {p} did not start a run")
                found = res.run_id
            run_ids[p] = found
        report = compare_runs(store, run_ids)
        store_comparison(store, report)
        return report
    finally:
        store.close()
