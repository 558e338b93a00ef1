"""The provider registry: one entry per provider, read by the CLI, doctor, shadow and compare."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

from reflector_cli.commands.base import Provider
from reflector_cli.core.config import ProviderName, load_settings
from reflector_cli.core.errors import UserError
from reflector_cli.providers import registry
from reflector_cli.providers.local import LocalProvider
from reflector_cli.providers.recorder import Recorder
from reflector_cli.store.events import EventSink
from reflector_cli.store.repo import Store
from tests.store.test_store import pipe


def test_every_configurable_provider_is_registered_and_offered() -> None:
    assert set(registry.NAMES) == set(typing.get_args(ProviderName))
    assert [p.value for p in Provider] == list(registry.NAMES)


def test_each_shadow_is_another_registered_provider() -> None:
    for spec in registry.SPECS:
        assert spec.shadow in registry.NAMES and spec.shadow != spec.name


def test_an_unknown_provider_is_one_clear_line() -> None:
    with pytest.raises(UserError) as err:
        registry.spec("kubernetes")
    assert "kubernetes" in str(err.value) and "\n" not in str(err.value)
    assert all(name in str(err.value) for name in registry.NAMES)


def test_only_engines_submit_and_sync() -> None:
    assert registry.ENGINES == ("hatchet",)
    assert registry.spec("local").submit is None and registry.spec("local").sync is None


def test_compare_measures_against_local_when_it_ran() -> None:
    assert registry.reference(["celery", "local", "hatchet"]) == "local"
    assert registry.reference(["hatchet", "celery"]) == "hatchet"


def test_ready_names_what_to_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(data_dir=tmp_path)
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    assert registry.spec("celery").ready(settings) == (
        False,
        "celery: CELERY_BROKER_URL is not set",
    )
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:1/0")
    assert registry.spec("celery").ready(settings) == (True, "celery")
    ok, detail = registry.spec("local").ready(settings)
    assert ok and detail == f"local ({settings.workers} worker processes)"


def test_build_gives_the_named_provider(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    store = Store(tmp_path / "db.sqlite3")
    try:
        sink = EventSink(store, "t-rec-1", "r-1")
        log = Recorder(store, settings, pipe(), "r-1", sink)
        prov = registry.build("local", settings, log, {"generate_title"})
        assert isinstance(prov, LocalProvider) and prov.name == "local"
    finally:
        store.close()
