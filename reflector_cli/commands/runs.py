"""`reflector runs` and `reflector runs show`: run history, stage by stage, at any width."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from reflector_cli.commands.base import (
    DataDirOpt,
    JsonOpt,
    Provider,
    emit_json,
    open_store,
    out,
    runs_app,
    settings_from,
)
from reflector_cli.core.errors import UserError
from reflector_cli.providers import registry
from reflector_cli.store.lifecycle import reap_interrupted
from reflector_cli.views.textview import Col, duration, fit_table, table_lines, wrap

_SINCE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(value: str | None) -> str | None:
    """`24h`, `7d`, `30m`, `2w` or an ISO date/time -> the store's UTC timestamp format."""
    if not value:
        return None
    m = _SINCE.match(value.strip().lower())
    if m:
        when = datetime.now(UTC) - timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    else:
        try:
            when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise UserError(
                f"--since {value!r}: expected an age like 24h, 7d, 30m, 2w or an ISO date"
            ) from None
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


SinceOpt = Annotated[
    str | None,
    typer.Option("--since", help="Only runs started within this age (24h, 7d, 30m) or after "
                 "an ISO date."),
]  # fmt: skip


def _print_lines(lines: list[str], style: str | None = None) -> None:
    for line in lines:
        out.print(Text(line, style=style or ""), soft_wrap=True, highlight=False)


def _when(ts: str | None) -> str:
    return ts[:16].replace("T", " ") if ts else ""


# --------------------------------------------------------------------------- runs


@runs_app.callback(invoke_without_command=True)
def runs_list(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(help="How many runs, newest first.")] = 20,
    status: Annotated[
        str | None, typer.Option(help="Only runs with this status (ended, error, running…).")
    ] = None,
    provider: Annotated[Provider | None, typer.Option(help="Only runs of this provider.")] = None,
    since: SinceOpt = None,
    comparisons: Annotated[
        bool, typer.Option("--comparisons", help="List stored provider comparisons instead.")
    ] = False,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List recent runs (newest first), with whole run ids you can paste into `runs show`."""
    if ctx.invoked_subcommand:
        return
    from reflector_cli.store.runviews import list_runs

    settings = settings_from(data_dir=data_dir)
    store = open_store(settings)
    reap_interrupted(store, settings)  # a killed run's process is gone: say so, not "running"
    if comparisons:
        _list_comparisons(store, limit, as_json)
        return
    doc = list_runs(store, limit, status=status, provider=provider, since=parse_since(since))
    if as_json:
        emit_json(doc)
        return
    cols = [
        Col("run"),
        Col("provider"),
        Col("status"),
        Col("started (UTC)"),
        Col("took", right=True),
        Col("transcript", optional=True),
        Col("role", optional=True),
        Col("error", optional=True),
    ]
    rows = [
        [
            r["id"],
            r["provider"],
            r["status"],
            _when(r["created_at"]),
            duration(r["duration_s"]),
            r["transcript_id"],
            r["role"],
            r["error_stage"] or "",
        ]
        for r in doc
    ]
    if not rows:
        out.print("no runs match", highlight=False)
        return
    _print_lines(table_lines(*fit_table(cols, rows, out.width)))


def _list_comparisons(store: Any, limit: int, as_json: bool) -> None:
    rows = [
        {
            "id": r["id"],
            "recording_id": r["recording_id"],
            "created_at": r["created_at"],
            "providers": json.loads(r["providers"]),
            "runs": json.loads(r["runs"]),
            "agree": bool(r["agree"]),
        }
        for r in store.comparisons(limit)
    ]
    if as_json:
        emit_json(rows)
        return
    table = Table("comparison", "recording", "providers", "agree", "created")
    for r in rows:
        table.add_row(
            r["id"],
            r["recording_id"],
            ", ".join(r["providers"]),
            "[green]yes[/]" if r["agree"] else "[red]no[/]",
            r["created_at"],
        )
    out.print(table)


# --------------------------------------------------------------------------- runs show


@runs_app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one run: every stage with its status, attempts, duration and error."""
    from reflector_cli.store.runviews import run_view, stage_views

    settings = settings_from(data_dir=data_dir)
    store = open_store(settings)
    run = store.run(run_id)
    if run is None:
        raise UserError(
            f"{run_id}: no run has this id or unique prefix (`reflector runs` lists whole ids)"
        )
    if reap_interrupted(store, settings, str(run["recording_id"])):
        run = store.run(run["id"]) or run
    engine = registry.BY_NAME.get(run["provider"])
    if engine and engine.sync and run["status"] in ("submitted", "running"):
        engine.sync(store, run["id"], settings)  # the engine is the source of truth while it runs
        run = store.run(run["id"])
    stages = stage_views(store, run["id"])
    view = run_view(run)
    if as_json:
        emit_json(
            {
                "run_id": run["id"],
                "status": run["status"],
                "provider": run["provider"],
                "stages": stages,
            }
        )
        return
    _print_run(view, stages)


def _print_run(view: dict[str, Any], stages: list[dict[str, Any]]) -> None:
    width = out.width
    head = f"{view['id']}  {view['provider']} · {view['status']} · {duration(view['duration_s'])}"
    _print_lines(wrap(head, width), "bold")
    _print_lines(wrap(f"transcript {view['transcript_id']}  recording {view['recording_id']}",
                      width))  # fmt: skip
    if view["error_message"]:
        _print_lines(wrap(f"{view['error_stage']}: {view['error_message']}", width), "red")
    cols = [
        Col("stage"),
        Col("track", right=True),
        Col("status"),
        Col("tries", right=True),
        Col("took", right=True),
        Col("started (UTC)", optional=True),
        Col("reused from", optional=True),
        Col("detail", optional=True),
    ]
    rows = [
        [
            s["stage"],
            "" if s["track"] is None else str(s["track"]),
            s["status"],
            str(s["attempts"]),
            duration(s["duration_s"]),
            (s["started_at"] or "")[11:19],
            s["reused_from"] or "",
            s["detail"] or "",
        ]
        for s in stages
    ]
    kept, fitted = fit_table(cols, rows, width)
    lines = table_lines(kept, fitted)
    _print_lines(lines[:1], "bold")
    for s, line in zip(stages, lines[1:], strict=True):
        bad = s["status"] in ("error", "failed")
        _print_lines([line], "red" if bad else ("dim" if s["status"] == "skipped" else None))
        note = s["error"] if bad else None
        if note:
            _print_lines(wrap(f"↳ {note}", width, indent="    "), "red")
