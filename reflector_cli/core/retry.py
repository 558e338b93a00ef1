"""Retrying, declared once: the backoff formula (`RetryPolicy`), the one Retry-After parser, and
the stamina loop every outgoing HTTP client retries through.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import stamina

from reflector_cli.core.config import Settings

# A server's Retry-After is honoured up to this; past it, the caller's own retry takes over.
MAX_RETRY_AFTER_S = 60.0


@dataclass(frozen=True)
class RetryPolicy:
    """How often something failing is tried again and how long to wait in between.

    One formula everywhere (stages on every provider, HTTP clients): the wait before retry `n`
    (1-based) is `min(max_backoff_s, initial_backoff_s * factor ** (n - 1))`, times a random
    factor in [1 - jitter, 1] so parallel callers do not retry in step.
    """

    max_attempts: int = 3
    initial_backoff_s: float = 1.0
    factor: float = 2.0
    max_backoff_s: float = 60.0
    jitter: float = 0.0

    @property
    def retries(self) -> int:
        return self.max_attempts - 1

    def delay_s(self, retry: int) -> float:
        """Seconds to wait before retry `retry` (the first retry is 1)."""
        base = min(self.max_backoff_s, self.initial_backoff_s * self.factor ** (retry - 1))
        return base * random.uniform(1 - self.jitter, 1) if self.jitter else base

    def resolved(self, settings: Settings) -> RetryPolicy:
        """This policy with the env overrides the user set (`REFLECTOR_RETRIES`,
        `REFLECTOR_RETRY_BACKOFF`); what the user left unset keeps the declaration."""
        given = settings.model_fields_set
        changes: dict[str, Any] = {}
        if "retries" in given:
            changes["max_attempts"] = settings.retries + 1
        if "retry_backoff_s" in given:
            changes["initial_backoff_s"] = settings.retry_backoff_s
        return replace(self, **changes) if changes else self


def retry_after_s(
    value: str | None, *, cap: float = MAX_RETRY_AFTER_S, now: dt.datetime | None = None
) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date, never below 0 nor
    above `cap`; None when absent or unreadable (the caller's backoff applies)."""
    if not value or not value.strip():
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        seconds = (when - (now or dt.datetime.now(dt.UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(cap, max(0.0, seconds))


class TryAgain(Exception):
    """Raised inside an attempt: worth another try, after `wait_s` when the server said so.
    `status_code` is the HTTP status that caused it (None: no answer at all)."""

    def __init__(
        self, problem: str, wait_s: float | None = None, status_code: int | None = None
    ) -> None:
        super().__init__(problem)
        self.wait_s = wait_s
        self.status_code = status_code


WaitFn = Callable[[float, TryAgain], None]


def attempts(
    policy: RetryPolicy, on_wait: WaitFn | None = None, *, cap_s: float | None = None
) -> Iterator[stamina.Attempt]:
    """stamina attempts that retry `TryAgain` by `policy`; a server's hint replaces the backoff.

    Use as `for attempt in attempts(p): with attempt: ...`; the last `TryAgain` propagates.
    `on_wait(seconds, exc)` hears of each wait before it happens (logs, a shared pause);
    every wait is capped at `cap_s` (default: the policy's max backoff).
    """
    cap = policy.max_backoff_s if cap_s is None else cap_s
    retried = [0]

    def backoff(exc: Exception) -> bool | dt.timedelta:
        if not isinstance(exc, TryAgain) or retried[0] + 1 >= policy.max_attempts:
            return False
        retried[0] += 1
        wait = policy.delay_s(retried[0]) if exc.wait_s is None else exc.wait_s
        wait = min(wait, cap)
        if on_wait is not None:
            on_wait(wait, exc)
        return dt.timedelta(seconds=wait)

    return iter(
        stamina.retry_context(
            on=backoff, attempts=max(1, policy.max_attempts), timeout=None, wait_jitter=0
        )
    )
