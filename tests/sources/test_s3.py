"""Raw-track download from an S3-compatible bucket (a real S3 API: moto's server on 127.0.0.1):
streaming, skip-when-same-size, key validation, clear errors, and consent deletion."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from reflector_cli.core.config import load_settings
from reflector_cli.core.errors import UserError
from reflector_cli.core.models import (
    ConsentIn,
    FinalizeOut,
    MixdownOut,
    Participant,
    ParticipantsOut,
    RecordingOut,
    TrackRef,
)
from reflector_cli.sources import s3
from reflector_cli.stages.consent import cleanup_consent
from reflector_cli.stages.context import StageContext
from reflector_cli.storage import LocalStorage
from tests.sources.daily_fake import AWS_ENV, moto_s3

BUCKET = "customer-raw"
KEY = "acme/room-20241129090000/1732870800000-p1-cam-audio-1732870801000"


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    with pytest.MonkeyPatch.context() as mp, moto_s3() as url:
        for k, v in AWS_ENV.items():
            mp.setenv(k, v)
        boto3.client("s3", endpoint_url=url).create_bucket(Bucket=BUCKET)
        yield url


@pytest.fixture
def client(s3_url: str, tmp_path: Path) -> Any:
    return s3.s3_client(load_settings(data_dir=tmp_path, s3_endpoint_url=s3_url))


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "data")


def test_download_streams_then_skips_when_same_size(client: Any, storage: LocalStorage) -> None:
    # Bigger than one chunk, so the copy really is streamed in pieces.
    payload = bytes(range(256)) * (s3.CHUNK // 256 * 2 + 7)
    client.put_object(Bucket=BUCKET, Key=KEY, Body=payload)
    dest = "rid/raw/0-track"
    assert s3.download(client, BUCKET, KEY, storage, dest) is True
    assert storage.read_bytes(dest) == payload
    assert [p.name for p in storage.path("rid/raw").iterdir()] == ["0-track"]  # no temp left

    mtime = storage.path(dest).stat().st_mtime_ns
    assert s3.download(client, BUCKET, KEY, storage, dest, expected_size=len(payload)) is False
    assert s3.download(client, BUCKET, KEY, storage, dest) is False  # size from HEAD
    assert storage.path(dest).stat().st_mtime_ns == mtime

    # A stored copy of another size (an interrupted older tool, a changed object) is replaced.
    storage.write_bytes(dest, b"short")
    assert s3.download(client, BUCKET, KEY, storage, dest) is True
    assert storage.read_bytes(dest) == payload


@pytest.mark.parametrize(
    "key",
    ["../secrets", "acme/../../etc/passwd", "/abs/key", "acme//x", "acme/./x", "a\\b", "", "a\nb"],
)
def test_unsafe_source_keys_are_rejected(client: Any, storage: LocalStorage, key: str) -> None:
    with pytest.raises(UserError, match="not a safe object key"):
        s3.download(client, BUCKET, key, storage, "rid/raw/0-x")
    assert storage.list("") == []


def test_unsafe_destination_key_is_rejected(client: Any, storage: LocalStorage) -> None:
    client.put_object(Bucket=BUCKET, Key=KEY, Body=b"abc")
    with pytest.raises(UserError, match="not a safe relative key"):
        s3.download(client, BUCKET, KEY, storage, "rid/../../outside")
    assert not (storage.root.parent / "outside").exists()


def test_missing_object_and_bucket_are_clear_errors(client: Any, storage: LocalStorage) -> None:
    with pytest.raises(UserError, match=f"s3://{BUCKET}/acme/nope: no such object"):
        s3.download(client, BUCKET, "acme/nope", storage, "rid/raw/0-nope")
    with pytest.raises(UserError, match="no such (bucket|object)"):
        s3.download(client, "no-such-bucket", KEY, storage, "rid/raw/0-nope", expected_size=3)
    assert storage.list("") == []


def _consent_input(keys: list[str], denied: bool) -> ConsentIn:
    tracks = [
        TrackRef(index=i, key=f"rid/raw/{i}-t", source_name=k, participant_id=f"p{i}")
        for i, k in enumerate(keys)
    ]
    return ConsentIn(
        recording_id="rid",
        recording=RecordingOut(
            recording_id="rid", tracks=tracks, bucket=BUCKET, source_keys=[*keys, "acme/video"]
        ),
        participants=ParticipantsOut(
            participants=[
                Participant(
                    speaker=t.index,
                    participant_id=t.participant_id,
                    name=f"P{t.index}",
                    consent=not (denied and t.index == 0),
                    track_key=t.key,
                )
                for t in tracks
            ]
        ),
        padded=[],
        mixdown=MixdownOut(key="rid/audio.mp3", duration_s=1, tracks_mixed=1, peak_gain=1),
        finalize=FinalizeOut(doc_key="rid/final.json", word_count=0, topic_count=0),
    )


@pytest.mark.parametrize("from_bucket", [False, True])
def test_consent_cleanup_touches_the_bucket_only_when_configured(
    s3_url: str, client: Any, tmp_path: Path, from_bucket: bool
) -> None:
    keys = ["acme/a-cam-audio", "acme/b-cam-audio"]
    for k in [*keys, "acme/video"]:
        client.put_object(Bucket=BUCKET, Key=k, Body=b"x")
    storage = LocalStorage(tmp_path / "data")
    for i in range(2):
        storage.write_bytes(f"rid/raw/{i}-t", b"ours")
    settings = load_settings(
        data_dir=tmp_path, s3_endpoint_url=s3_url, daily_delete_from_bucket=from_bucket
    )
    ctx = StageContext(storage=storage, settings=settings)

    out = cleanup_consent(_consent_input(keys, denied=True), ctx)
    assert out.consent_denied and out.audio_deleted and out.failed == []
    assert storage.list("rid/raw") == []
    left = [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    in_bucket = {*keys, "acme/video"} & set(left)
    if from_bucket:
        assert in_bucket == set()
        assert f"s3://{BUCKET}/acme/video" in out.deleted
    else:
        assert in_bucket == {*keys, "acme/video"}
        assert not any(d.startswith("s3://") for d in out.deleted)


def test_consent_given_deletes_nothing(s3_url: str, client: Any, tmp_path: Path) -> None:
    client.put_object(Bucket=BUCKET, Key="acme/kept", Body=b"x")
    settings = load_settings(
        data_dir=tmp_path, s3_endpoint_url=s3_url, daily_delete_from_bucket=True
    )
    ctx = StageContext(storage=LocalStorage(tmp_path / "data"), settings=settings)
    out = cleanup_consent(_consent_input(["acme/kept"], denied=False), ctx)
    assert not out.consent_denied and out.deleted == []
    client.head_object(Bucket=BUCKET, Key="acme/kept")


def test_bucket_deletion_failure_is_reported_not_claimed(s3_url: str, tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, s3_endpoint_url=s3_url)
    client = s3.s3_client(settings)
    deleted, failed = s3.delete_objects(client, "bucket-that-does-not-exist", ["acme/a"])
    assert deleted == [] and len(failed) == 1 and "NoSuchBucket" in failed[0]
