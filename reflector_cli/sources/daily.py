"""Daily.co REST client (recordings, meeting participants) and the CLI's recording-id check.

401/403/404 become one-line UserErrors (never retried); 429, 5xx and network errors are retried
a bounded number of times, honouring Retry-After, then raised as transient `DailyApiError`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from pathlib import PurePosixPath
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reflector_cli.core.config import Settings
from reflector_cli.core.errors import (
    ConfigError,
    PermanentStageError,
    ServiceUnavailable,
    UserError,
)
from reflector_cli.core.retry import RetryPolicy, TryAgain, attempts, retry_after_s
from reflector_cli.core.urls import endpoint_label
from reflector_cli.sources.folder import (
    MAX_OFFSET_S,
    MAX_TEXT,
    DailyName,
    check_offset,
    parse_daily_name,
)

log = logging.getLogger("reflector.daily")

TIMEOUT_S = 15.0
MAX_ATTEMPTS = 4
BACKOFF_S = 0.5
MAX_WAIT_S = 30.0  # a longer Retry-After is capped: the stage's own retry takes over after that
PAGE_SIZE = 100
MAX_PAGES = 100  # a server ignoring our cursor must not loop us forever
# A track may start this long after the recording's stated end (clock skew, late joins).
DURATION_SLACK_S = 60.0

# Daily ids are UUIDs; the id also becomes our storage prefix, so nothing path-like gets through.
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
_RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})


class DailyApiError(ServiceUnavailable):
    """Daily's API stayed unavailable (429/5xx/network) through every attempt: transient."""


class _Lenient(BaseModel):
    # Daily adds fields over time; we read what we need and ignore the rest.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class DailyTrack(_Lenient):
    type: str
    s3_key: str = Field(alias="s3Key")
    size: int | None = None


class DailyS3(_Lenient):
    bucket_name: str
    bucket_region: str | None = None


class DailyRecording(_Lenient):
    id: str
    room_name: str | None = None
    start_ts: float | None = Field(default=None, description="epoch seconds (sometimes a float)")
    status: str | None = None
    type: str | None = Field(default=None, description="raw-tracks, cloud, …; null in lists")
    duration: float | None = Field(default=None, description="seconds")
    mtg_session_id: str | None = Field(default=None, alias="mtgSessionId")
    s3: DailyS3 | None = None
    tracks: list[DailyTrack] = []

    @property
    def start_ms(self) -> int | None:
        return None if self.start_ts is None else int(self.start_ts * 1000)


class DailyParticipant(_Lenient):
    participant_id: str
    user_id: str | None = None
    user_name: str | None = None
    join_time: float | None = None
    duration: float | None = None


def valid_id(value: str) -> bool:
    return bool(_ID.match(value))


def _brief(resp: httpx.Response) -> str:
    return " ".join(resp.text.split())[:200]


class DailyClient:
    """A small synchronous client; use as a context manager (one connection pool per use)."""

    def __init__(
        self,
        api_key: str,
        base_url: str = "https://api.daily.co/v1",
        *,
        timeout_s: float = TIMEOUT_S,
        max_attempts: int = MAX_ATTEMPTS,
        backoff_s: float = BACKOFF_S,
        on_wait: Callable[[float], None] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._where = endpoint_label(self.base_url)  # a configured URL may carry credentials
        self.policy = RetryPolicy(max(1, max_attempts), backoff_s, 2.0, MAX_WAIT_S)
        self.on_wait = on_wait  # hears of each wait before a retry (tests, progress)
        self.http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
            timeout=timeout_s,
        )

    def __enter__(self) -> DailyClient:
        return self

    def __exit__(
        self,
        _t: type[BaseException] | None,
        _e: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _get(self, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
        """GET with bounded retries; returns any non-retryable response (caller maps 404)."""

        def note(wait: float, exc: TryAgain) -> None:
            log.info("Daily API GET %s: %s, retry in %.1fs", path, exc, wait)
            if self.on_wait is not None:
                self.on_wait(wait)

        try:
            for attempt in attempts(self.policy, note, cap_s=MAX_WAIT_S):
                with attempt:
                    return self._get_once(path, params)
        except TryAgain as exc:
            raise DailyApiError(
                f"Daily API {self._where}{path}: {exc} after {self.policy.max_attempts} attempts"
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _get_once(self, path: str, params: dict[str, Any] | None) -> httpx.Response:
        try:
            resp = self.http.get(path, params=params)
        except httpx.TransportError as exc:
            raise TryAgain(f"{type(exc).__name__}: {exc}") from None
        if resp.status_code in (401, 403):
            raise UserError(
                f"Daily API {self._where}: bad API key (HTTP {resp.status_code}); "
                "check DAILY_API_KEY"
            )
        if resp.status_code in _RETRYABLE:
            hinted = retry_after_s(resp.headers.get("retry-after"), cap=MAX_WAIT_S)
            raise TryAgain(f"HTTP {resp.status_code}", hinted)
        return resp

    @staticmethod
    def _json(resp: httpx.Response, what: str) -> Any:
        if resp.status_code >= 400:
            raise UserError(f"{what}: Daily API refused the request ({_brief(resp)})")
        try:
            return resp.json()
        except ValueError:
            raise PermanentStageError(f"{what}: Daily API answered with non-JSON") from None

    def get_recording(self, recording_id: str) -> DailyRecording:
        what = f"Daily.co recording {recording_id}"
        if not valid_id(recording_id):
            raise UserError(f"{what}: not a valid recording id")
        resp = self._get(f"/recordings/{quote(recording_id, safe='')}")
        if resp.status_code == 404:
            raise UserError(f"{what}: no such recording (HTTP 404 from {self._where})")
        try:
            return DailyRecording.model_validate(self._json(resp, what))
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(x) for x in err["loc"])
            raise PermanentStageError(
                f"{what}: unexpected API answer: {where}: {err['msg']}"
            ) from None

    def list_recordings(
        self, limit: int = PAGE_SIZE, starting_after: str | None = None
    ) -> list[DailyRecording]:
        """One page of recordings, newest first; page back with `starting_after=<last id>`."""
        params: dict[str, Any] = {"limit": limit}
        if starting_after:
            params["starting_after"] = starting_after
        data = self._json(self._get("/recordings", params), "Daily.co recordings list")
        return [DailyRecording.model_validate(r) for r in data.get("data") or []]

    def iter_recordings(
        self,
        max_pages: int = 10,
        limit: int = PAGE_SIZE,
        *,
        last_page: Callable[[list[DailyRecording]], bool] = lambda _page: False,
    ) -> Iterator[DailyRecording]:
        """Recordings newest first, paging back with `starting_after` until a short page, a
        page `last_page` accepts, or `max_pages`."""
        after: str | None = None
        for _ in range(max_pages):
            page = self.list_recordings(limit, after)
            yield from page
            if len(page) < limit or last_page(page):
                return
            after = page[-1].id

    def get_participants(
        self, session_id: str, page_size: int = PAGE_SIZE
    ) -> list[DailyParticipant] | None:
        """Every participant of a meeting session, following `joined_after` pages; None when
        Daily does not know the session (404 on the first page)."""
        what = f"Daily.co meeting session {session_id}"
        if not valid_id(session_id):
            raise UserError(f"{what}: not a valid session id")
        path = f"/meetings/{quote(session_id, safe='')}/participants"
        params: dict[str, Any] = {"limit": page_size}
        out: list[DailyParticipant] = []
        seen: set[str] = set()
        for page_no in range(MAX_PAGES):
            resp = self._get(path, params)
            if resp.status_code == 404:
                # Daily answers 404 past the last page, and for a session it does not know.
                return out if page_no else None
            rows = self._json(resp, what).get("data") or []
            fresh = [DailyParticipant.model_validate(r) for r in rows]
            fresh = [p for p in fresh if p.participant_id not in seen]
            seen.update(p.participant_id for p in fresh)
            out += fresh
            if len(rows) < page_size or not fresh:
                break
            params["joined_after"] = rows[-1]["participant_id"]
        return out


def client_from_settings(settings: Settings, what: str = "Daily.co source") -> DailyClient:
    if settings.daily_api_key is None or not settings.daily_api_key.get_secret_value():
        raise ConfigError(
            f"{what}: DAILY_API_KEY is not set (the Daily.co source is not configured)"
        )
    return DailyClient(settings.daily_api_key.get_secret_value(), settings.daily_api_url)


# --------------------------------------------------------------------------- track selection


class PickedTrack(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: str
    size: int | None
    name: DailyName


def pick_tracks(
    rec: DailyRecording, include_screen_audio: bool = False
) -> tuple[list[PickedTrack], list[str]]:
    """The speaker tracks in a stable order (track start, then key) plus warnings for the rest.

    `cam-audio` tracks are speakers; `screen-audio` only when asked for; video never.
    """
    picked: list[PickedTrack] = []
    warnings: list[str] = []
    for t in rec.tracks:
        if t.type != "audio":
            continue
        name = parse_daily_name(PurePosixPath(t.s3_key).name)
        if name is None:
            warnings.append(f"{t.s3_key}: not a Daily raw-track key name, skipped")
        elif name.kind == "screen-audio" and not include_screen_audio:
            warnings.append(f"{t.s3_key}: screen-audio track skipped (include_screen_audio is off)")
        elif name.kind in ("cam-audio", "screen-audio"):
            picked.append(PickedTrack(key=t.s3_key, size=t.size, name=name))
    picked.sort(key=lambda p: (p.name.track_start_ms, p.key))
    return picked, warnings


def check_ready(rec: DailyRecording, include_screen_audio: bool = False) -> list[PickedTrack]:
    """Raise a one-line UserError unless the recording can be processed now."""
    what = f"Daily.co recording {rec.id}"
    if rec.status not in (None, "finished"):
        raise UserError(f"{what}: status is {rec.status!r}, not finished yet")
    picked, _ = pick_tracks(rec, include_screen_audio)
    if not picked:
        kinds = sorted({t.type for t in rec.tracks}) or ["none"]
        raise UserError(
            f"{what}: no cam-audio tracks (a raw-tracks recording is needed; "
            f"track types: {', '.join(kinds)})"
        )
    if rec.s3 is None or not rec.s3.bucket_name:
        raise UserError(f"{what}: the API names no S3 bucket for its tracks")
    if rec.room_name is not None and len(rec.room_name) > MAX_TEXT:
        raise UserError(f"{what}: room_name is over {MAX_TEXT} characters")
    check_offsets(rec, picked)
    return picked


def check_offsets(rec: DailyRecording, picked: list[PickedTrack]) -> None:
    """Each key name's offset within a day and, when Daily states the recording's length,
    within that length plus slack: otherwise pad_track would pad silence for ever."""
    what = f"Daily.co recording {rec.id}"
    limit_s, limit = MAX_OFFSET_S, "the 24 h limit"
    if rec.duration is not None:
        length = check_offset(f"{what}: duration", rec.duration)
        if length + DURATION_SLACK_S < limit_s:
            limit_s = length + DURATION_SLACK_S
            limit = f"the recording's {length:g} s length (+{DURATION_SLACK_S:g} s)"
    for t in picked:
        # A slightly negative offset is clock skew between Daily's hosts; 0 is what we use.
        where = f"{what}: track {t.key}: offset from the key name"
        check_offset(where, max(0.0, t.name.offset_s), limit_s, limit)


def prepare_daily(recording_id: str, settings: Settings) -> tuple[str, str]:
    """Validate a Daily.co recording id with the API; returns (storage recording id, source).

    Every problem is a one-line UserError, including an API that stays unavailable."""
    if not valid_id(recording_id):
        raise UserError(f"{recording_id}: no such folder, and not a Daily.co recording id")
    if settings.daily_api_key is None:
        raise ConfigError(
            f"{recording_id}: no such folder, and DAILY_API_KEY is not set to look it up "
            "as a Daily.co recording"
        )
    try:
        with client_from_settings(settings) as api:
            rec = api.get_recording(recording_id)
    except (DailyApiError, httpx.HTTPError) as exc:
        raise UserError(f"Daily.co recording {recording_id}: {exc}") from None
    check_ready(rec, settings.include_screen_audio)
    # The validated id, not the API's echo of it, names our storage prefix.
    return recording_id, recording_id
