"""LLM backends behind one interface; `get_backend` picks one by name from the options."""

from __future__ import annotations

from collections.abc import Callable

from reflector_cli.config import Settings
from reflector_cli.errors import ConfigError
from reflector_cli.llm.base import Backend
from reflector_cli.llm.extractive import ExtractiveBackend
from reflector_cli.models import LlmOptions

# name -> factory; networked backends register here when they land, no stage changes needed.
BACKENDS: dict[str, Callable[[LlmOptions, Settings], Backend]] = {
    "extractive": lambda _options, _settings: ExtractiveBackend(),
}
PLANNED = ("anthropic", "openai")


def get_backend(options: LlmOptions, settings: Settings) -> Backend:
    name = options.backend.strip().lower()
    factory = BACKENDS.get(name)
    if factory is not None:
        return factory(options, settings)
    if name in PLANNED:
        raise ConfigError(f"LLM backend {name!r} is not available yet; use --llm extractive")
    known = ", ".join(sorted(BACKENDS))
    raise ConfigError(f"unknown LLM backend {options.backend!r} (known: {known})")


__all__ = ["BACKENDS", "Backend", "get_backend"]
