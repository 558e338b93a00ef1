"""Opening an audio file with PyAV, where every way it can be unreadable is a one-line UserError;
and writing one, where a full disk is said in plain words."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

import av
import soundfile as sf

from reflector_cli.core.errors import PermanentStageError, UserError, one_line

# Less free space than this after a failed write means the disk filled up.
_NEARLY_FULL_BYTES = 1 << 20


@contextlib.contextmanager
def open_audio(
    path: Path, label: str
) -> Iterator[tuple[av.container.InputContainer, av.AudioStream]]:
    """The container at `path` and its first audio stream; errors name `label`."""
    try:
        container = av.open(str(path))
    except av.FFmpegError as e:
        raise UserError(
            f"{label}: unreadable or corrupt container ({one_line(e.strerror)})"
        ) from None
    with container:
        if not container.streams.audio:
            kinds = sorted({s.type for s in container.streams}) or ["none"]
            raise UserError(f"{label}: no audio stream (streams: {', '.join(kinds)})")
        yield container, container.streams.audio[0]


def _nearly_full(path: Path) -> bool:
    try:
        st = os.statvfs(path.parent)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < _NEARLY_FULL_BYTES


@contextlib.contextmanager
def write_errors(stage: str, target: str, tmp: Path) -> Iterator[None]:
    """Turn an encoder's failed write into one line naming `target`: libsndfile only says
    "System error." and PyAV an errno, so a full disk is recognised by the space left."""
    try:
        yield
    except (sf.LibsndfileError, OSError) as exc:
        full = getattr(exc, "errno", None) == errno.ENOSPC or _nearly_full(tmp)
        if full:
            raise PermanentStageError(
                f"{stage}: no space left on device writing {target}"
            ) from None
        if isinstance(exc, sf.LibsndfileError):
            raise PermanentStageError(f"{stage}: cannot write {target} ({one_line(exc)})") from None
        raise
