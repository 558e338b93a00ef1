"""Tasks the shared-pool tests run in real worker processes (importable by the workers)."""

from __future__ import annotations

import time

from reflector_cli.providers import local


def emit_then_return(label: str, n: int) -> str:
    """Events through the provider's outbox, as a stage's progress does, then a result."""
    for i in range(n):
        local._events.put(("PROGRESS", {"label": label, "done": i}))
    return label


def sleep_for(seconds: float) -> float:
    time.sleep(seconds)
    return seconds
