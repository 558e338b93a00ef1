"""Rough token and dollar estimate of the LLM stages for `process --dry-run`, before any call."""

from __future__ import annotations

import math

from reflector_cli.core.config import Settings
from reflector_cli.llm import default_backend_name
from reflector_cli.llm.chunking import TARGET_WORDS
from reflector_cli.llm.prompts import MAX_SUBJECTS
from reflector_cli.llm.structured import CONTEXT_SAFETY, PROMPT_OVERHEAD_TOKENS

TOKENS_PER_WORD = 1.5  # English ~1.3, plus the speaker name on every line
PROMPT_TOKENS = 350  # system prompt + instructions + JSON shape, per call
TOPIC_OUT, TITLE_OUT, NOTES_OUT, MERGE_OUT = 90, 25, 900, 700
# USD per million tokens (input, output), by model-name prefix; unknown models get no price.
PRICES: dict[str, tuple[float, float]] = {
    "claude-haiku-4": (1.0, 5.0),
    "claude-3-5-haiku": (0.8, 4.0),
    "claude-sonnet-4": (3.0, 15.0),
    "claude-3-7-sonnet": (3.0, 15.0),
    "claude-opus-4": (15.0, 75.0),
}


def _model_and_context(backend: str, settings: Settings) -> tuple[str | None, int]:
    if backend == "anthropic":
        from reflector_cli.llm import anthropic_backend as a

        return settings.llm_model or a.DEFAULT_MODEL, a.CONTEXT_TOKENS
    from reflector_cli.llm import openai_backend as o

    return settings.llm_model, o.CONTEXT_TOKENS


def price(model: str | None) -> tuple[float, float] | None:
    if not model:
        return None
    hits = [p for prefix, p in PRICES.items() if model.startswith(prefix)]
    return hits[0] if hits else None


def estimate_cost(words: int, settings: Settings) -> dict[str, object]:
    """Calls, tokens and USD the LLM stages would spend on a transcript of `words` words.

    Mirrors the backends' plan: one call per ~300-word chunk, one title call, one notes call
    per context-sized group of chunks, and a merge call when there is more than one group.
    """
    backend = default_backend_name(settings)
    if backend == "extractive" or words <= 0:
        return {
            "backend": backend,
            "model": None,
            "calls": 0,
            "input_tokens": 0,
            "output_tokens": 0,
            "usd": 0.0,
        }
    model, context = _model_and_context(backend, settings)
    transcript = math.ceil(words * TOKENS_PER_WORD)
    chunks = max(1, round(words / TARGET_WORDS))
    budget = int((context - settings.llm_max_tokens) * CONTEXT_SAFETY) - PROMPT_OVERHEAD_TOKENS
    groups = max(1, math.ceil(transcript / max(budget, 1)))
    calls = chunks + 1 + groups + (groups > 1)
    input_tokens = (
        PROMPT_TOKENS * calls
        + transcript  # topic calls see each chunk once
        + chunks * 40  # title call: one line per topic
        + transcript  # notes calls see the whole transcript once
        + (groups > 1) * groups * MAX_SUBJECTS * 80  # merge call: every part's subjects
    )
    output_tokens = chunks * TOPIC_OUT + TITLE_OUT + groups * NOTES_OUT + (groups > 1) * MERGE_OUT
    rates = price(model)
    usd = None
    if rates is not None:
        usd = round((input_tokens * rates[0] + output_tokens * rates[1]) / 1_000_000, 4)
    return {
        "backend": backend,
        "model": model,
        "calls": calls,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "usd": usd,
    }
