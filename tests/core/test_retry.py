"""The one backoff formula, the one Retry-After parser and the env overrides of stage retries."""

from __future__ import annotations

import datetime as dt
from email.utils import format_datetime

import pytest

from reflector_cli.core.config import load_settings
from reflector_cli.core.retry import RetryPolicy, TryAgain, attempts, retry_after_s
from reflector_cli.pipeline import dag

NOW = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        ("0.5", 0.5),
        ("-3", 0.0),
        ("3600", 60.0),  # capped
        (format_datetime(NOW + dt.timedelta(seconds=20), usegmt=True), 20.0),
        (format_datetime(NOW - dt.timedelta(seconds=20), usegmt=True), 0.0),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(header: str | None, seconds: float) -> None:
    assert retry_after_s(header, now=NOW) == seconds


def test_retry_after_cap_is_the_callers() -> None:
    assert retry_after_s("45", cap=30) == 30.0


def test_backoff_formula_grows_and_is_capped() -> None:
    p = RetryPolicy(max_attempts=6, initial_backoff_s=0.5, factor=3, max_backoff_s=10)
    assert [p.delay_s(n) for n in range(1, 6)] == [0.5, 1.5, 4.5, 10, 10]
    jittered = RetryPolicy(initial_backoff_s=4, jitter=0.25)
    assert all(3.0 <= jittered.delay_s(1) <= 4.0 for _ in range(50))


def test_env_overrides_apply_only_when_set(tmp_path) -> None:
    declared = dag.stage("get_recording").retry
    assert dag.stage("get_recording").retry_policy(load_settings(data_dir=tmp_path)) == declared
    over = dag.stage("get_recording").retry_policy(
        load_settings(data_dir=tmp_path, retries=0, retry_backoff_s=0.25)
    )
    assert (over.max_attempts, over.initial_backoff_s) == (1, 0.25)
    assert over.factor == declared.factor


@pytest.mark.usefixtures("no_retry_waits")
def test_attempts_retry_try_again_with_the_hint_and_reraise_the_last() -> None:
    waits: list[float] = []
    calls = 0
    with pytest.raises(TryAgain, match="third"):
        for attempt in attempts(RetryPolicy(3, 1.0), lambda w, _e: waits.append(w)):
            with attempt:
                calls += 1
                raise TryAgain(["first", "second", "third"][calls - 1], 5.0 if calls == 1 else None)
    assert calls == 3 and waits == [5.0, 2.0]


def test_attempts_do_not_retry_other_errors() -> None:
    calls = 0
    with pytest.raises(ValueError):
        for attempt in attempts(RetryPolicy(5, 0.0)):
            with attempt:
                calls += 1
                raise ValueError("final")
    assert calls == 1
