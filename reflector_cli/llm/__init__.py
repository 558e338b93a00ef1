"""LLM backends behind one interface; `get_backend` picks one by name from the options."""

from __future__ import annotations

from collections.abc import Callable

from reflector_cli.core.config import Settings
from reflector_cli.core.errors import ConfigError
from reflector_cli.core.models import LlmOptions
from reflector_cli.llm.base import Backend
from reflector_cli.llm.extractive import ExtractiveBackend
from reflector_cli.llm.structured import UsageSink


def _anthropic(options: LlmOptions, settings: Settings, sink: UsageSink | None) -> Backend:
    from reflector_cli.llm.anthropic_backend import AnthropicBackend

    return AnthropicBackend(settings, model=options.model, sink=sink)


def _openai(options: LlmOptions, settings: Settings, sink: UsageSink | None) -> Backend:
    from reflector_cli.llm.openai_backend import OpenAIBackend

    return OpenAIBackend(settings, model=options.model, sink=sink)


# name -> factory; a new backend registers here, no stage changes needed.
BACKENDS: dict[str, Callable[[LlmOptions, Settings, UsageSink | None], Backend]] = {
    "extractive": lambda _options, _settings, _sink: ExtractiveBackend(),
    "anthropic": _anthropic,
    "openai": _openai,
}


def default_backend_name(settings: Settings) -> str:
    """`--llm`/REFLECTOR_LLM if given, else anthropic if ANTHROPIC_API_KEY is set, else extractive.

    Resolved once, into the pipeline input, so the choice is part of the run's cache key.
    """
    if "llm" in settings.model_fields_set:
        return settings.llm.strip().lower()
    return "anthropic" if settings.anthropic_api_key is not None else "extractive"


def get_backend(options: LlmOptions, settings: Settings, sink: UsageSink | None = None) -> Backend:
    """The backend `options` names; networked ones report token usage to `sink` (a ctx)."""
    name = options.backend.strip().lower()
    factory = BACKENDS.get(name)
    if factory is None:
        known = ", ".join(sorted(BACKENDS))
        raise ConfigError(f"unknown LLM backend {options.backend!r} (known: {known})")
    return factory(options, settings, sink)


__all__ = ["BACKENDS", "Backend", "default_backend_name", "get_backend"]
