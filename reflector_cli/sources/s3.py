"""Raw tracks from a customer's S3-compatible bucket (boto3): streamed into our storage, and
deleted from the bucket when consent cleanup is configured to.
"""

from __future__ import annotations

from typing import Any

from reflector_cli.core.config import Settings
from reflector_cli.core.errors import UserError
from reflector_cli.storage import Storage, check_key

CHUNK = 1 << 20


def s3_client(settings: Settings, region: str | None = None) -> Any:
    """boto3 client for `S3_ENDPOINT_URL` (AWS when unset); credentials from the AWS env vars."""
    import boto3

    return boto3.client("s3", endpoint_url=settings.s3_endpoint_url or None, region_name=region)


def check_source_key(key: str) -> str:
    """Refuse object keys whose parts could climb out of a folder once used as a path."""
    parts = key.split("/")
    if (
        not key
        or key.startswith("/")
        or "\\" in key
        or any(p in ("", ".", "..") for p in parts)
        or any(ord(c) < 32 for c in key)
    ):
        raise UserError(f"S3 key {key!r}: not a safe object key (absolute, empty part or '..')")
    return key


def _code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def _user_problem(exc: Exception, bucket: str, key: str) -> UserError | None:
    """Errors a retry cannot fix, as one line naming the object; None for transient ones."""
    code = _code(exc)
    where = f"s3://{bucket}/{key}"
    if code in {"404", "NoSuchKey", "NotFound"}:
        return UserError(f"{where}: no such object")
    if code == "NoSuchBucket":
        return UserError(f"{where}: no such bucket")
    if code in {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"}:
        return UserError(f"{where}: access denied ({code}); check the AWS credentials")
    return None


def download(
    client: Any,
    bucket: str,
    key: str,
    storage: Storage,
    dest_key: str,
    expected_size: int | None = None,
) -> bool:
    """Stream `s3://bucket/key` to `dest_key`; False when an object of that size is already there.

    The write is atomic (storage writer), so a killed download never leaves a partial track.
    """
    check_source_key(key)
    check_key(dest_key)
    try:
        size = expected_size
        if size is None:
            size = int(client.head_object(Bucket=bucket, Key=key)["ContentLength"])
        if storage.exists(dest_key) and storage.size(dest_key) == size:
            return False
        obj = client.get_object(Bucket=bucket, Key=key)
    except Exception as exc:
        problem = _user_problem(exc, bucket, key)
        if problem is not None:
            raise problem from None
        raise
    length = int(obj["ContentLength"])
    written = 0
    with storage.writer(dest_key) as tmp:
        with tmp.open("wb") as f:
            for chunk in obj["Body"].iter_chunks(CHUNK):
                f.write(chunk)
                written += len(chunk)
        # Raising inside the writer discards the temp file: a short read never lands.
        if written != length:
            raise OSError(f"s3://{bucket}/{key}: got {written} of {length} bytes")
    return True


def delete_objects(client: Any, bucket: str, keys: list[str]) -> tuple[list[str], list[str]]:
    """Delete each key; returns (deleted, failed) as `s3://` URLs, failures with the reason."""
    deleted: list[str] = []
    failed: list[str] = []
    for key in keys:
        url = f"s3://{bucket}/{key}"
        try:
            check_source_key(key)
            client.delete_object(Bucket=bucket, Key=key)
        except Exception as exc:  # noqa: BLE001 - every failure is reported, none is fatal
            failed.append(f"{url}: {_code(exc) or exc}")
        else:
            deleted.append(url)
    return deleted, failed
