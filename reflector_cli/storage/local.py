"""Artifact storage on the local disk (the data dir by default), and the `Storage` protocol.

Writes are atomic (temp file + rename), so a killed process never leaves half an artifact
under a real key, and a retried stage overwrites the same object instead of leaking copies.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Protocol

from reflector_cli.core.errors import UserError


class Storage(Protocol):
    def exists(self, key: str) -> bool: ...
    def size(self, key: str) -> int: ...
    def delete(self, key: str) -> None: ...
    def list(self, prefix: str) -> list[str]: ...
    def read_bytes(self, key: str) -> bytes: ...
    def write_bytes(self, key: str, data: bytes) -> None: ...
    def put_file(self, key: str, path: Path) -> None: ...
    def local_path(self, key: str) -> contextlib.AbstractContextManager[Path]: ...
    def writer(self, key: str, suffix: str = "") -> contextlib.AbstractContextManager[Path]: ...
    def describe(self, key: str) -> str: ...


def check_key(key: str) -> str:
    """Refuse keys that could escape the storage root."""
    p = PurePosixPath(key)
    if not key or p.is_absolute() or ".." in p.parts or "\\" in key:
        raise UserError(f"artifact key {key!r}: not a safe relative key")
    return key


class LocalStorage:
    """Artifacts as files under a root directory (default: the data dir)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def size(self, key: str) -> int:
        return self.path(key).stat().st_size

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(key).unlink()

    def list(self, prefix: str) -> list[str]:
        base = self.path(prefix) if prefix else self.root
        if not base.exists():
            return []
        return sorted(
            str(p.relative_to(self.root).as_posix()) for p in base.rglob("*") if p.is_file()
        )

    def read_bytes(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def write_bytes(self, key: str, data: bytes) -> None:
        with self.writer(key) as tmp:
            tmp.write_bytes(data)

    def put_file(self, key: str, path: Path) -> None:
        with self.writer(key, suffix=Path(path).suffix) as tmp:
            shutil.copyfile(path, tmp)

    @contextlib.contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        p = self.path(key)
        if not p.is_file():
            raise FileNotFoundError(f"artifact {key} is missing from {self.root}")
        yield p

    @contextlib.contextmanager
    def writer(self, key: str, suffix: str = "") -> Iterator[Path]:
        """Yield a temp path to write; on success it atomically becomes `key`."""
        final = self.path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=final.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            yield tmp
            os.replace(tmp, final)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def describe(self, key: str) -> str:
        return str(self.path(key))
