"""Environment variable names read both by the settings and, before the settings exist, by the
early worker start (providers/early.py), which must not import pydantic to read them."""

from __future__ import annotations

PROVIDER = "DURABLE_WORKFLOW_PROVIDER"
SHADOW_MODE = "DURABLE_WORKFLOW_SHADOW_MODE"
WORKERS = "REFLECTOR_WORKERS"
# What pydantic reads as True for a bool setting (case-insensitive).
TRUE_WORDS = frozenset({"1", "on", "t", "true", "y", "yes"})
