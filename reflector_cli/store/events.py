"""A run's event sink: append-only event rows, forwarded to a live observer."""

from __future__ import annotations

from typing import Any, Protocol

from reflector_cli.store.repo import Store

# Events not worth a row each: they are rendered live and dropped.
EPHEMERAL_EVENTS = frozenset({"PROGRESS"})


class Observer(Protocol):
    def event(self, event_type: str, data: dict[str, Any]) -> None: ...


class EventSink:
    """Persists a run's events (append-only rows) and forwards them to a live observer."""

    def __init__(
        self, store: Store, transcript_id: str, run_id: str, observer: Observer | None = None
    ) -> None:
        self.store = store
        self.transcript_id = transcript_id
        self.run_id = run_id
        self.observer = observer
        self.persist = True

    def __call__(self, event_type: str, data: dict[str, Any]) -> None:
        if self.persist and event_type not in EPHEMERAL_EVENTS:
            self.store.add_event(self.transcript_id, self.run_id, event_type, data)
        if self.observer is not None:
            self.observer.event(event_type, data)
