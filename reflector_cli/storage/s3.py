"""Artifact storage in an S3-compatible bucket (`REFLECTOR_STORAGE_URL=s3://bucket/prefix`), so
workers on several hosts share artifacts. The endpoint comes from boto3's own configuration
(`AWS_ENDPOINT_URL`, credentials and region from the usual AWS variables).

Uploads happen only after a stage finished writing a local temp file, so an object under a real
key is always complete, as with local storage.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from reflector_cli.core.errors import ConfigError
from reflector_cli.storage.local import check_key


def _not_found(exc: Exception) -> bool:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
    return code in {"404", "NoSuchKey", "NotFound"}


class S3Storage:
    def __init__(self, url: str, client: Any | None = None) -> None:
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not bucket:
            raise ConfigError(f"REFLECTOR_STORAGE_URL {url!r}: no bucket name")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if client is None:
            import boto3

            client = boto3.client("s3")
        self.client = client

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            if _not_found(exc):
                return False
            raise
        return True

    def size(self, key: str) -> int:
        head = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        return int(head["ContentLength"])

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def list(self, prefix: str) -> list[str]:
        full = self._key(prefix) if prefix else self.prefix
        strip = len(self.prefix) + 1 if self.prefix else 0
        keys: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=full
        ):
            keys += [obj["Key"][strip:] for obj in page.get("Contents", [])]
        return sorted(keys)

    def read_bytes(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()

    def write_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def put_file(self, key: str, path: Path) -> None:
        self.client.upload_file(str(path), self.bucket, self._key(key))

    @contextlib.contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        """Download to a temp file for tools that need a path (PyAV, whisper); removed after."""
        suffix = Path(key).suffix
        fd, name = tempfile.mkstemp(prefix="reflector-s3-", suffix=suffix)
        os.close(fd)
        tmp = Path(name)
        try:
            try:
                self.client.download_file(self.bucket, self._key(key), str(tmp))
            except Exception as exc:
                if _not_found(exc):
                    missing = f"artifact {key} is missing from {self.describe(key)}"
                    raise FileNotFoundError(missing) from None
                raise
            yield tmp
        finally:
            tmp.unlink(missing_ok=True)

    @contextlib.contextmanager
    def writer(self, key: str, suffix: str = "") -> Iterator[Path]:
        fd, name = tempfile.mkstemp(prefix="reflector-s3-", suffix=suffix)
        os.close(fd)
        tmp = Path(name)
        try:
            yield tmp
            self.put_file(key, tmp)
        finally:
            tmp.unlink(missing_ok=True)

    def describe(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"
