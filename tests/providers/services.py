"""Shared by the provider test environments: how a missing service is reported, and how the
project scripts' `KEY=VALUE` output is read."""

from __future__ import annotations

import os
import shlex

import pytest


def unavailable(service: str, reason: str) -> None:
    """Skip with the reason locally; under CI=true a missing service is a failure."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{service} unavailable under CI: {reason}")
    pytest.skip(f"{service} unavailable: {reason}")


def parse_env(text: str) -> dict[str, str]:
    """`export K=V` / `K=V` lines (shell-quoted values), as the scripts print them."""
    env: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("export "):
            line = line[len("export ") :]
        if "=" not in line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        parts = shlex.split(value) if value else [""]
        env[key.strip()] = parts[0] if parts else ""
    return env
