"""Every provider by name: how to build one for a run, what `doctor` checks, the shadow it
compares against, and what an engine adds (runs that outlive their submitter: --no-wait
submit and sync). Provider modules are imported only when one is built or checked."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reflector_cli.core.config import Settings
from reflector_cli.core.errors import UserError

if TYPE_CHECKING:
    from reflector_cli.providers.recorder import Recorder
    from reflector_cli.store.repo import Store

Check = dict[str, Any]  # a doctor row: {"name", "ok", "detail", "required"}


@dataclass(frozen=True)
class ProviderSpec:
    name: str
    # (settings, run log, stages to re-run) -> a provider with run() and reattach(run).
    build: Callable[[Settings, Recorder, set[str]], Any]
    # (ok, detail) for doctor's "provider" row when this is the configured provider.
    ready: Callable[[Settings], tuple[bool, str]]
    # Where a shadow run goes by default (DURABLE_WORKFLOW_SHADOW_MODE).
    shadow: str
    # Further doctor rows (checked even when another provider is configured).
    checks: Callable[[Settings], list[Check]] = lambda settings: []
    # Engine only: start a run without waiting (returns our run id) ...
    submit: Callable[..., str] | None = None
    # ... and record what the engine did since: (store, run id, settings) -> run info.
    sync: Callable[[Store, str, Settings], dict[str, Any]] | None = None


def _local(settings: Settings, log: Recorder, rerun: set[str]) -> Any:
    from reflector_cli.providers.local import LocalProvider

    return LocalProvider(settings, log, rerun=rerun)


def _hatchet(settings: Settings, log: Recorder, rerun: set[str]) -> Any:
    from reflector_cli.providers.hatchet import HatchetProvider

    return HatchetProvider(settings, log, rerun=rerun)


def _celery(settings: Settings, log: Recorder, rerun: set[str]) -> Any:
    from reflector_cli.providers.celery_app import CeleryProvider

    return CeleryProvider(settings, log, rerun=rerun)


def _needs_env(name: str, var: str, hint: str = "") -> Callable[[Settings], tuple[bool, str]]:
    """Ready once `var` (what the provider's client connects with) is set."""

    def ready(settings: Settings) -> tuple[bool, str]:
        if os.environ.get(var):
            return True, name
        return False, f"{name}: {var} is not set{hint}"

    return ready


def _hatchet_checks(settings: Settings) -> list[Check]:
    """Token vs effective addresses and reachability, when Hatchet is in use or configured."""
    if settings.provider != "hatchet" and not os.environ.get("HATCHET_CLIENT_TOKEN"):
        return []
    from reflector_cli.providers.hatchet import hatchet_checks

    return hatchet_checks(settings)


def _hatchet_submit(source: str, settings: Settings, **kw: Any) -> str:
    from reflector_cli.providers.hatchet import submit_run

    return submit_run(source, settings, **kw)


def _hatchet_sync(store: Store, run_id: str, settings: Settings) -> dict[str, Any]:
    from reflector_cli.providers.hatchet import sync_run

    return sync_run(store, run_id, settings)


SPECS: tuple[ProviderSpec, ...] = (
    ProviderSpec(
        "local",
        _local,
        lambda s: (True, f"local ({s.workers} worker processes)"),
        shadow="hatchet",
    ),
    ProviderSpec(
        "hatchet",
        _hatchet,
        _needs_env("hatchet", "HATCHET_CLIENT_TOKEN", " (scripts/hatchet-local env)"),
        shadow="celery",
        checks=_hatchet_checks,
        submit=_hatchet_submit,
        sync=_hatchet_sync,
    ),
    ProviderSpec("celery", _celery, _needs_env("celery", "CELERY_BROKER_URL"), shadow="hatchet"),
)
BY_NAME: dict[str, ProviderSpec] = {s.name: s for s in SPECS}
NAMES: tuple[str, ...] = tuple(BY_NAME)
# Compare's reference and the base of its overhead figures: the in-process provider.
REFERENCE = "local"
# Providers whose runs live on an engine: --no-wait submit and a later sync.
ENGINES: tuple[str, ...] = tuple(s.name for s in SPECS if s.submit is not None)


def spec(name: str) -> ProviderSpec:
    try:
        return BY_NAME[name]
    except KeyError:
        raise UserError(
            f"provider {name!r}: not available in this build ({', '.join(NAMES)})"
        ) from None


def build(name: str, settings: Settings, log: Recorder, rerun: set[str]) -> Any:
    """The provider `name` executing the run `log` records."""
    return spec(name).build(settings, log, rerun)


def reference(providers: list[str]) -> str:
    """Which of `providers` a comparison measures the others against."""
    return REFERENCE if REFERENCE in providers else providers[0]
