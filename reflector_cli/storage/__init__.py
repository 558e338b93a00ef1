"""Artifact storage at deterministic keys: the local data dir (`local`) or an S3 bucket (`s3`).

Writes are atomic (temp file + rename), so a killed process never leaves half an artifact
under a real key, and a retried stage overwrites the same object instead of leaking copies.
"""

from __future__ import annotations

from pathlib import Path

from reflector_cli.core.errors import UserError
from reflector_cli.storage.local import LocalStorage, Storage, check_key

__all__ = ["LocalStorage", "Storage", "check_key", "open_storage"]


def open_storage(url: str | None, data_dir: Path) -> Storage:
    """Storage from `REFLECTOR_STORAGE_URL` (a path, file:// or s3://bucket/prefix), else the
    data dir."""
    if not url:
        return LocalStorage(data_dir)
    if url.startswith("file://"):
        return LocalStorage(Path(url.removeprefix("file://")))
    if "://" not in url:
        return LocalStorage(Path(url))
    if url.startswith("s3://"):
        from reflector_cli.storage.s3 import S3Storage

        return S3Storage(url)
    raise UserError(
        f"REFLECTOR_STORAGE_URL {url!r}: unsupported scheme (use a path, file:// or s3://)"
    )
