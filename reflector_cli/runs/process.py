"""Process one recording end to end with a chosen provider: lock, run bookkeeping, result.

This is the provider-agnostic driver the CLI calls; providers only execute the DAG.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reflector_cli.core import models as m
from reflector_cli.core.config import Settings
from reflector_cli.core.errors import UserError, one_line
from reflector_cli.core.lock import recording_lock
from reflector_cli.pipeline.runinput import prepare_input
from reflector_cli.providers import registry
from reflector_cli.providers.recorder import Recorder
from reflector_cli.runs.compare import ComparisonReport, compare_runs, store_comparison
from reflector_cli.store import lifecycle
from reflector_cli.store.events import Observer
from reflector_cli.store.lifecycle import Lifecycle
from reflector_cli.store.repo import Store
from reflector_cli.store.results import result_view
from reflector_cli.store.runviews import latest_ended_run


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
    """The registered provider `name` for the run `log` records (see providers.registry)."""
    return registry.build(name, settings, log, rerun)


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
    return registry.spec(primary).shadow


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
    before = lifecycle.prior(store, pipe)
    if before.finished(pipe) and not force:
        return ProcessResult(result_view(store, pipe.transcript_id), before.result_run, True)
    latest = before.latest
    if latest and not force and _engine_run_to_follow(latest, pipe, provider, role):
        resumed = _follow_earlier(latest, settings, store, observer)
        if resumed.ok:
            return resumed
        # It failed while nobody watched (now recorded): this command asks for a fresh try.
    lc = Lifecycle.begin(store, pipe, provider, role=role, force=force, observer=observer)
    # Hooks commit the transcript: only the primary run may do that.
    log = Recorder(store, settings, pipe, lc.run_id, lc.sink, reuse=not force, hooks=lc.primary)
    return _conclude(lc, lambda: make_provider(provider, settings, log, set()).run())


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
    run: dict[str, Any], settings: Settings, store: Store, observer: Observer | None
) -> ProcessResult:
    """Pick up a run whose submitter was killed (or that was submitted with --no-wait)."""
    lc = Lifecycle.attach(store, run, observer)
    log = Recorder(store, settings, lc.pipe, lc.run_id, lc.sink, reuse=False, hooks=lc.primary)
    prov = make_provider(run["provider"], settings, log, set())
    return _conclude(lc, lambda: prov.reattach(run))


def _conclude(lc: Lifecycle, execute: Callable[[], Any]) -> ProcessResult:
    """Run `execute` (a provider's run) through the lifecycle; the result to show."""
    outcome = lc.run(execute)
    view = result_view(lc.store, lc.pipe.transcript_id)
    if outcome.status == "ended":
        return ProcessResult(view, lc.run_id, False)
    view["run_id"] = lc.run_id
    return ProcessResult(view, lc.run_id, False, outcome.error_stage, outcome.error)


# --------------------------------------------------------------------------- compare


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
            found = latest_ended_run(store, recording_id, p) if reuse else None
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
