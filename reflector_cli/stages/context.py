"""The small context a stage receives: storage, settings, progress and event emission.

Providers build it; stages only call its methods, so they never know who runs them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from reflector_cli.core.config import Settings
from reflector_cli.storage import Storage

EmitFn = Callable[[str, dict[str, Any]], None]


def _drop(_type: str, _data: dict[str, Any]) -> None:
    return None


@dataclass
class StageContext:
    """What a stage may touch besides its input model."""

    storage: Storage
    settings: Settings
    stage: str = ""
    track: int | None = None
    attempt: int = 1
    emit_fn: EmitFn = field(default=_drop)
    cancelled_fn: Callable[[], bool] = field(default=lambda: False)

    def emit(self, event_type: str, **data: Any) -> None:
        """Append a domain event (TOPIC, FINAL_TITLE…) to the run's event stream."""
        self.emit_fn(event_type, data)

    def progress(self, done: float, total: float) -> None:
        """Report progress inside a long stage (seconds of audio, chunks…)."""
        self.emit_fn(
            "PROGRESS",
            {"stage": self.stage, "track": self.track, "done": done, "total": total},
        )

    def cancelled(self) -> bool:
        return self.cancelled_fn()

    def key(self, recording_id: str, *parts: str) -> str:
        """Deterministic artifact key under the recording's folder."""
        return "/".join((recording_id, *parts))
