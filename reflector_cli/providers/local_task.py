"""What a local worker process runs: kept apart from providers/local.py so a worker imports
only the stage runner, not the scheduler, recorder, store and LLM backends (~0.5 s each)."""

from __future__ import annotations

from typing import Any

from reflector_cli.core.config import Settings, load_settings
from reflector_cli.pipeline.execute import asr_options, run_stage, warm_up

_events: Any = None  # the worker side of the event queue (set by the pool initializer)


def warm_from_settings() -> None:
    """An early worker's warm-up, before the CLI has its settings: the model of the settings
    this process reads (environment, .env). Should the run's options differ, its own warm-up
    replaces the model (stages.asr.warm)."""
    warm_up(asr_options(load_settings()))


def init_worker(events: Any) -> None:
    global _events
    _events = events


def pool_task(
    run_id: str,
    name: str,
    payload: dict[str, Any],
    settings: Settings,
    track: int | None,
    attempt: int,
) -> dict[str, Any]:
    # Plain tuples: the pool routes them to their run and makes them recorder Events.
    def emit(event_type: str, data: dict[str, Any]) -> None:
        _events.put((run_id, event_type, data))

    return run_stage(name, payload, settings, track=track, attempt=attempt, emit_fn=emit)
