"""Daily.co source: the real httpx client against a fake Daily API on 127.0.0.1, the source stages
against that fake plus a real S3 API (moto), and `reflector process <daily-id>` end to end."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from reflector_cli.core.config import Settings, load_settings
from reflector_cli.core.errors import UserError
from reflector_cli.core.models import AsrOptions, GetParticipantsIn, PipelineInput
from reflector_cli.sources.daily import DailyApiError, DailyClient, prepare_daily
from reflector_cli.stages.context import StageContext
from reflector_cli.stages.source import get_participants, get_recording
from reflector_cli.storage import LocalStorage
from tests.cli.conftest import FIXTURE, cli_json
from tests.sources.daily_fake import (
    API_KEY,
    AWS_ENV,
    FakeDaily,
    moto_s3,
    recording,
    serve,
    track_key,
)

# Retries happen for real; stamina skips their waits (they are recorded through on_wait).
pytestmark = pytest.mark.usefixtures("no_retry_waits")

RID = "0f9c3b1e-5b8e-4d43-9a57-6a1d2c3b4e5f"
ALICE, BOB, CAROL = (str(uuid.uuid5(uuid.NAMESPACE_URL, n)) for n in ("alice", "bob", "carol"))
BUCKET = "daily-raw"


@pytest.fixture
def api() -> Iterator[FakeDaily]:
    with serve(FakeDaily()) as fake:
        yield fake


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    with pytest.MonkeyPatch.context() as mp, moto_s3() as url:
        for k, v in AWS_ENV.items():
            mp.setenv(k, v)
        boto3.client("s3", endpoint_url=url).create_bucket(Bucket=BUCKET)
        yield url


def client(fake: FakeDaily, sleeps: list[float] | None = None, **kw: Any) -> DailyClient:
    record = sleeps.append if sleeps is not None else (lambda _s: None)
    return DailyClient(API_KEY, fake.url, on_wait=record, **kw)


def people(n: int) -> list[dict[str, Any]]:
    return [
        {"participant_id": f"p{i}", "user_id": f"u{i}", "user_name": f"Person {i}", "join_time": i}
        for i in range(1, n + 1)
    ]


# --------------------------------------------------------------------------- the REST client


def test_get_recording_parses_daily_fields(api: FakeDaily) -> None:
    api.recordings[RID] = recording(RID, [(track_key(ALICE, "cam-audio", 0), 10)], duration=61)
    with client(api) as c:
        rec = c.get_recording(RID)
    assert rec.id == RID and rec.mtg_session_id == "sess-1"
    assert rec.start_ms == 1732870800250 and rec.duration == 61
    assert rec.s3 is not None and rec.s3.bucket_name == BUCKET
    assert [t.s3_key for t in rec.tracks] == [track_key(ALICE, "cam-audio", 0)]


@pytest.mark.parametrize("status", [401, 403])
def test_bad_api_key_is_a_clear_error_and_not_retried(api: FakeDaily, status: int) -> None:
    api.recordings[RID] = recording(RID, [])
    if status == 401:
        api.api_key = "another-key"
    else:
        api.failures[f"/recordings/{RID}"] = [403]
    with client(api) as c, pytest.raises(UserError, match=f"bad API key \\(HTTP {status}\\)"):
        c.get_recording(RID)
    assert len(api.requests) == 1


def test_unknown_recording_is_no_such_recording(api: FakeDaily) -> None:
    with client(api) as c, pytest.raises(UserError, match=f"{RID}: no such recording"):
        c.get_recording(RID)


def test_429_then_503_then_success_honours_retry_after(api: FakeDaily) -> None:
    api.recordings[RID] = recording(RID, [])
    api.failures[f"/recordings/{RID}"] = [429, 503]
    api.retry_after = "2"
    sleeps: list[float] = []
    with client(api, sleeps, backoff_s=0.5) as c:
        assert c.get_recording(RID).id == RID
    # Retry-After wins for the 429; the 503 gets exponential backoff (0.5 * 2).
    assert sleeps == [2.0, 1.0]
    assert len(api.requests) == 3


def test_retries_are_bounded(api: FakeDaily) -> None:
    api.recordings[RID] = recording(RID, [])
    api.failures[f"/recordings/{RID}"] = [429] * 10
    sleeps: list[float] = []
    with client(api, sleeps, max_attempts=3) as c, pytest.raises(DailyApiError, match="429"):
        c.get_recording(RID)
    assert len(api.requests) == 3 and len(sleeps) == 2


@pytest.mark.parametrize(("total", "pages"), [(5, 3), (6, 4)])
def test_participants_follow_pagination(api: FakeDaily, total: int, pages: int) -> None:
    # 5 people in pages of 2 → 3 pages (the last one short); 6 → 3 full pages and a 404.
    api.participants["sess-1"] = people(total)
    with client(api) as c:
        got = c.get_participants("sess-1", page_size=2)
    assert got is not None
    assert [p.participant_id for p in got] == [f"p{i}" for i in range(1, total + 1)]
    assert got[0].user_name == "Person 1" and got[0].user_id == "u1"
    cursors = [q.get("joined_after", [None])[0] for _, q in api.requests]
    assert len(api.requests) == pages
    assert cursors[:3] == [None, "p2", "p4"]


def test_unknown_session_gives_none(api: FakeDaily) -> None:
    with client(api) as c:
        assert c.get_participants("sess-unknown") is None


def test_list_recordings(api: FakeDaily) -> None:
    for rid in ("a1", "b2"):
        api.recordings[rid] = recording(rid, [])
    with client(api) as c:
        assert [r.id for r in c.list_recordings()] == ["a1", "b2"]
        assert [r.id for r in c.iter_recordings(limit=1, max_pages=5)] == ["a1", "b2"]
    assert api.requests[0][1]["limit"] == ["100"]
    # Pages of one: a1, then after a1 → b2, then after b2 → an empty page ends it.
    assert [q.get("starting_after") for _, q in api.requests[1:]] == [None, ["a1"], ["b2"]]


# --------------------------------------------------------------------------- prepare_daily


def test_prepare_daily_validates_the_id_with_the_api(api: FakeDaily, tmp_path: Path) -> None:
    s = load_settings(data_dir=tmp_path, daily_api_key=API_KEY, daily_api_url=api.url)
    api.recordings[RID] = recording(RID, [(track_key(ALICE, "cam-audio", 0), 1)])
    assert prepare_daily(RID, s) == (RID, RID)
    with pytest.raises(UserError, match="no such recording"):
        prepare_daily("0000-missing", s)
    with pytest.raises(UserError, match="not a Daily.co recording id"):
        prepare_daily("../etc", s)
    with pytest.raises(UserError, match="DAILY_API_KEY is not set"):
        prepare_daily(RID, load_settings(data_dir=tmp_path, daily_api_url=api.url))
    api.recordings["busy"] = recording("busy", [], status="in-progress")
    with pytest.raises(UserError, match="'in-progress', not finished"):
        prepare_daily("busy", s)
    api.recordings["cloud"] = recording("cloud", [(track_key(ALICE, "cam-video", 0), 1)])
    with pytest.raises(UserError, match="no cam-audio tracks"):
        prepare_daily("cloud", s)


# --------------------------------------------------------------------------- source stages


def pipeline(screen: bool = False) -> PipelineInput:
    return PipelineInput(
        recording_id=RID,
        transcript_id="t-daily",
        source_kind="daily",
        source=RID,
        asr=AsrOptions(model="unused"),
        include_screen_audio=screen,
    )


@pytest.fixture
def daily_ctx(api: FakeDaily, s3_url: str, tmp_path: Path) -> StageContext:
    data = tmp_path / "data"
    settings: Settings = load_settings(
        data_dir=data, daily_api_key=API_KEY, daily_api_url=api.url, s3_endpoint_url=s3_url
    )
    return StageContext(storage=LocalStorage(data), settings=settings)


def upload(s3_url: str, tracks: dict[str, Path]) -> list[tuple[str, int]]:
    s3 = boto3.client("s3", endpoint_url=s3_url)
    for key, path in tracks.items():
        s3.upload_file(str(path), BUCKET, key)
    return [(k, p.stat().st_size) for k, p in tracks.items()]


@pytest.fixture
def daily_recording(
    api: FakeDaily, s3_url: str, tmp_path: Path, make_track: Callable[..., Path]
) -> dict[str, str]:
    """Alice at 0 s, Carol at 1 s (container says 3 s), Bob at 2.5 s, plus screen audio and
    video; the participants API knows Alice and Bob only."""
    keys = {
        "alice": track_key(ALICE, "cam-audio", 0),
        "carol": track_key(CAROL, "cam-audio", 1000),
        "bob": track_key(BOB, "cam-audio", 2500),
        "screen": track_key(ALICE, "screen-audio", 500),
        "video": track_key(ALICE, "cam-video", 0),
    }
    src = tmp_path / "src"
    src.mkdir()
    files = {
        keys["alice"]: make_track(src / "a", 1.0, fmt="webm"),
        keys["carol"]: make_track(src / "c", 1.0, fmt="webm", start_time=3.0),
        keys["bob"]: make_track(src / "b", 1.0, freq=330, fmt="webm"),
        keys["screen"]: make_track(src / "s", 0.5, fmt="webm"),
    }
    listed = upload(s3_url, files) + [(keys["video"], 99)]
    api.recordings[RID] = recording(RID, listed, duration=4.0)
    api.participants["sess-1"] = [
        {"participant_id": BOB, "user_id": "u-bob", "user_name": "Bob"},
        {"participant_id": "someone-else", "user_name": "Eve"},
        {"participant_id": ALICE, "user_id": None, "user_name": "Alice"},
    ]
    return keys


def test_get_recording_downloads_speaker_tracks_with_offsets(
    daily_ctx: StageContext, daily_recording: dict[str, str]
) -> None:
    keys = daily_recording
    rec = get_recording(pipeline(), daily_ctx)
    assert [t.source_name for t in rec.tracks] == [keys["alice"], keys["carol"], keys["bob"]]
    assert [t.participant_id for t in rec.tracks] == [ALICE, CAROL, BOB]
    assert [t.offset_s for t in rec.tracks] == [0.0, 1.0, 2.5]
    assert rec.tracks[0].key == f"{RID}/raw/0-{keys['alice'].rsplit('/', 1)[1]}"
    assert rec.duration_s == 4.0 and rec.session_id == "sess-1"
    assert rec.started_at_ms == 1732870800250 and rec.room == "planning-20241129090000"
    assert rec.bucket == BUCKET and keys["video"] in rec.source_keys
    assert any("screen-audio track skipped" in w for w in rec.warnings)
    assert any(
        keys["carol"] in w and "container starts at 3.0" in w and "using the key name" in w
        for w in rec.warnings
    )
    s3 = boto3.client("s3", endpoint_url=daily_ctx.settings.s3_endpoint_url)
    body = s3.get_object(Bucket=BUCKET, Key=keys["bob"])["Body"].read()
    assert daily_ctx.storage.read_bytes(rec.tracks[2].key) == body

    # A retry finds every track already stored with the right size: nothing is fetched again.
    stored = Path(daily_ctx.storage.describe(rec.tracks[0].key))
    before = stored.stat().st_mtime_ns
    assert get_recording(pipeline(), daily_ctx) == rec
    assert stored.stat().st_mtime_ns == before

    with_screen = get_recording(pipeline(screen=True), daily_ctx)
    assert [t.source_name for t in with_screen.tracks][1] == keys["screen"]


def test_participants_named_from_the_session(
    api: FakeDaily, daily_ctx: StageContext, daily_recording: dict[str, str]
) -> None:
    rec = get_recording(pipeline(), daily_ctx)
    out = get_participants(GetParticipantsIn(pipeline=pipeline(), recording=rec), daily_ctx)
    got = [(p.speaker, p.name, p.user_id, p.track_key) for p in out.participants]
    assert got == [
        (0, "Alice", None, rec.tracks[0].key),
        (1, "Speaker 2", None, rec.tracks[1].key),  # Carol is unknown to the API
        (2, "Bob", "u-bob", rec.tracks[2].key),
    ]


def test_missing_session_id_falls_back_to_speaker_n(
    api: FakeDaily, daily_ctx: StageContext, daily_recording: dict[str, str]
) -> None:
    api.recordings[RID].pop("mtgSessionId")
    rec = get_recording(pipeline(), daily_ctx)
    assert rec.session_id is None
    api.requests.clear()
    out = get_participants(GetParticipantsIn(pipeline=pipeline(), recording=rec), daily_ctx)
    assert [p.name for p in out.participants] == ["Speaker 1", "Speaker 2", "Speaker 3"]
    assert api.requests == []  # nothing to ask Daily without a session id


def test_path_traversal_key_is_rejected_before_download(
    api: FakeDaily, daily_ctx: StageContext
) -> None:
    evil = f"acme/../../../tmp/1732870800000-{ALICE}-cam-audio-1732870800000"
    api.recordings[RID] = recording(RID, [(evil, 10)])
    with pytest.raises(UserError, match="not a safe object key"):
        get_recording(pipeline(), daily_ctx)
    assert daily_ctx.storage.list(RID) == []


def test_source_not_configured_without_api_key(tmp_path: Path) -> None:
    ctx = StageContext(storage=LocalStorage(tmp_path), settings=load_settings(data_dir=tmp_path))
    with pytest.raises(UserError, match="DAILY_API_KEY is not set"):
        get_recording(pipeline(), ctx)


# --------------------------------------------------------------------------- end to end


def test_reflector_process_daily_id_end_to_end(api: FakeDaily, s3_url: str, tmp_path: Path) -> None:
    """The real CLI in a subprocess: fixture tracks under Daily keys in moto, the fake API
    (with a 429 first) names the speakers."""
    manifest = json.loads((FIXTURE / "recording.json").read_text())
    files: dict[str, Path] = {}
    names = []
    for p in manifest["participants"]:
        offset_ms = round(p["offset_s"] * 1000)
        files[track_key(p["participant_id"], "cam-audio", offset_ms, room="e2e")] = (
            FIXTURE / p["file"]
        )
        names.append({"participant_id": p["participant_id"], "user_name": p["name"]})
    api.recordings[RID] = recording(RID, upload(s3_url, files), session="sess-e2e")
    api.participants["sess-e2e"] = names
    api.failures[f"/recordings/{RID}"] = [429]
    env = {
        **AWS_ENV,
        "DAILY_API_KEY": API_KEY,
        "DAILY_API_URL": api.url,
        "S3_ENDPOINT_URL": s3_url,
    }
    plan = cli_json("process", RID, "--dry-run", data_dir=tmp_path / "dry", env=env)
    assert [t["offset_s"] for t in plan["tracks"]] == [0.0, 6.0, 15.0]
    assert not (tmp_path / "dry").exists()
    doc = cli_json("process", RID, data_dir=tmp_path / "data", env=env)
    assert doc["status"] == "ended"
    assert [p["name"] for p in doc["participants"]] == ["Alice", "Bob", "Carol"]
    assert [p["speaker"] for p in doc["participants"]] == [0, 1, 2]
    assert doc["word_count"] > 50
    raw = sorted((tmp_path / "data" / RID / "raw").iterdir())
    assert len(raw) == 3
    assert ("/meetings/sess-e2e/participants", {"limit": ["100"]}) in api.requests
