"""Opening an audio file with PyAV, where every way it can be unreadable is a one-line UserError."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import av

from reflector_cli.errors import UserError, one_line


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
