"""Live progress for people: one rich progress row per stage (and per track) on stderr."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

STATE_STYLE = {
    "started": "[cyan]running[/]",
    "done": "[green]done[/]",
    "reused": "[green]reused[/]",
    "retrying": "[yellow]retrying[/]",
    "failed": "[red]failed[/]",
    "skipped": "[dim]skipped[/]",
}


class LiveDisplay:
    """Observer that renders STAGE and PROGRESS events as progress rows."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description:<28}"),
            BarColumn(bar_width=24),
            TextColumn("{task.fields[state]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.rows: dict[tuple[str, str, int | None], TaskID] = {}

    def __enter__(self) -> LiveDisplay:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def _row(self, stage: str, track: int | None, prefix: str = "") -> TaskID:
        key = (prefix, stage, track)
        if key not in self.rows:
            label = stage if track is None else f"{stage} · track {track}"
            label = f"{prefix}: {label}" if prefix else label
            self.rows[key] = self.progress.add_task(label, total=None, state="queued")
        return self.rows[key]

    def for_recording(self, label: str) -> RecordingRows:
        """An observer for one of several recordings shown at once (rows named by `label`)."""
        return RecordingRows(self, label)

    def event(self, event_type: str, data: dict[str, Any], prefix: str = "") -> None:
        if event_type == "STAGE":
            row = self._row(data["stage"], data.get("track"), prefix)
            state = data["state"]
            label = STATE_STYLE.get(state, state)
            if data.get("attempt", 0) > 1 and state in {"started", "retrying"}:
                label += f" (attempt {data['attempt']})"
            if state in {"done", "reused", "failed", "skipped"}:
                self.progress.update(row, total=1, completed=1, state=label)
                self.progress.stop_task(row)
            else:
                self.progress.update(row, state=label)
        elif event_type == "PROGRESS" and data.get("stage"):
            row = self._row(data["stage"], data.get("track"), prefix)
            total = float(data.get("total") or 0) or None
            self.progress.update(row, total=total, completed=float(data.get("done") or 0))


class RecordingRows:
    """One recording's events into a shared LiveDisplay (rich's Progress is thread-safe)."""

    def __init__(self, display: LiveDisplay, label: str) -> None:
        self.display, self.label = display, label

    def event(self, event_type: str, data: dict[str, Any]) -> None:
        self.display.event(event_type, data, self.label)
