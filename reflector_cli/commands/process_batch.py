"""`reflector process A B C`: several recordings pipelined (runs.batch), reported as each ends."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from reflector_cli.commands.base import err, progress_enabled
from reflector_cli.core.config import Settings

if TYPE_CHECKING:
    from reflector_cli.runs.process import ProcessResult


class Report(Protocol):
    """What `process` prints and collects per recording (commands.process._Report)."""

    as_json: bool
    docs: list[dict[str, Any]]

    def result(self, source: str, res: ProcessResult) -> None: ...

    def refused(self, source: str, message: str) -> None: ...


def process_batch(
    recordings: list[str],
    settings: Settings,
    *,
    provider: str | None,
    force: bool,
    deliver: bool,
    shadow: str | None,
    report: Report,
) -> None:
    """Results reported (in this thread) as each recording finishes; the documents listed in
    the order the recordings were given."""
    from reflector_cli.runs.batch import Batch, BatchItem
    from reflector_cli.views.display import LiveDisplay

    display = LiveDisplay(err) if progress_enabled(report.as_json) else None
    labels = _labels(recordings)
    finished: list[int] = []  # recording indexes in the order their documents were added

    def done(item: BatchItem) -> None:
        finished.append(item.index)
        if item.result is not None:
            report.result(item.source, item.result)
        else:
            report.refused(item.source, item.refused or "not started")

    batch = Batch(
        settings,
        provider=provider,
        force=force,
        deliver=deliver,
        shadow=shadow,
        parallel=settings.parallel,
        observer_for=lambda i, _s: display.for_recording(labels[i]) if display else None,
    )
    if display:
        display.__enter__()
    try:
        batch.run(recordings, done)
    finally:
        if display:
            display.__exit__(None, None, None)
    by_index = dict(zip(finished, report.docs, strict=True))
    report.docs = [by_index[i] for i in sorted(by_index)]


def _labels(recordings: list[str]) -> list[str]:
    """Short names for progress rows: the folder's name, numbered when two share one."""
    names = [Path(r).name or r for r in recordings]
    return [f"{n}#{i + 1}" if names.count(n) > 1 else n for i, n in enumerate(names)]
