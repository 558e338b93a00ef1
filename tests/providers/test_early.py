"""Early workers (started as the CLI starts): they import the stage code and load the model of
the settings they can see before any pool adopts them, unless a flag picks the model."""

from __future__ import annotations

import pytest

from reflector_cli.core import envnames
from reflector_cli.core.config import Settings, default_model_path
from reflector_cli.providers.early import PRELOAD, WARM, command_argv, warm_hook, worker_count
from reflector_cli.providers.local_task import init_worker
from reflector_cli.providers.workerpool import WorkerPool, spawn_early
from reflector_cli.stages.asr import warmed


def test_the_model_is_guessed_only_when_no_flag_picks_it() -> None:
    assert warm_hook(["process", "fixtures/meeting", "--json"]) == WARM
    for flag in ("--model", "--compute-type", "--threads", "--device"):
        assert warm_hook(["process", "x", flag, "v"]) is None
        assert warm_hook(["process", "x", f"{flag}=v"]) is None
    assert worker_count(["process", "x", "--workers", "3"]) == 3
    assert worker_count(["process", "x", "--dry-run"]) == 0


def test_global_flags_before_the_command_still_start_early_workers() -> None:
    for flags in (["-q"], ["--verbose"], ["-v"], ["--quiet"]):
        argv = command_argv([*flags, "process", "x", "--workers", "2"])
        assert argv == ["process", "x", "--workers", "2"] and worker_count(argv) == 2
    assert worker_count(command_argv(["-q", "doctor"])) == 0
    assert worker_count(command_argv(["--version", "process"])) == 0


@pytest.mark.parametrize("word", sorted(envnames.TRUE_WORDS | {"TRUE", "Yes"}))
def test_early_start_reads_the_environment_as_the_settings_do(
    word: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ["process", "x"]
    monkeypatch.setenv(envnames.WORKERS, "3")
    assert Settings().workers == worker_count(argv) == 3
    monkeypatch.setenv(envnames.SHADOW_MODE, word)
    assert Settings().shadow_mode and worker_count(argv) == 0  # shadow runs start no local pool
    monkeypatch.setenv(envnames.SHADOW_MODE, "false")
    monkeypatch.setenv(envnames.PROVIDER, "celery")
    assert Settings().provider == "celery" and worker_count(argv) == 0


def _adopted_worker_state(warm: str | None) -> object:
    spawn_early(1, PRELOAD, warm)
    pool = WorkerPool(1, init_worker)
    try:
        # The first task the adopted worker runs: no warm-up task was ever sent to it.
        return pool.submit(warmed).result(timeout=60)
    finally:
        pool.close()


def test_an_early_worker_has_the_default_model_loaded_before_its_first_task() -> None:
    model, compute_type, threads, device = _adopted_worker_state(WARM)  # type: ignore[misc]
    assert model == str(default_model_path())
    assert (compute_type, threads, device) == ("int8", 1, "cpu")


def test_without_the_guess_an_early_worker_loads_nothing() -> None:
    assert _adopted_worker_state(None) is None
