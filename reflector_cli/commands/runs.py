"""`reflector runs` and `reflector runs show`: run history, stage by stage."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from reflector_cli.commands.base import (
    DataDirOpt,
    JsonOpt,
    emit_json,
    open_store,
    out,
    runs_app,
    settings_from,
)
from reflector_cli.errors import UserError
from reflector_cli.runstate import reap_interrupted

# --------------------------------------------------------------------------- runs


@runs_app.callback(invoke_without_command=True)
def runs_list(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(help="How many runs, newest first.")] = 20,
    comparisons: Annotated[
        bool, typer.Option("--comparisons", help="List stored provider comparisons instead.")
    ] = False,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List recent runs (newest first)."""
    if ctx.invoked_subcommand:
        return
    settings = settings_from(data_dir=data_dir)
    store = open_store(settings)
    reap_interrupted(store, settings)  # a killed run's process is gone: say so, not "running"
    if comparisons:
        _list_comparisons(store, limit, as_json)
        return
    rows = store.runs(limit)
    doc = [
        {
            k: r[k]
            for k in (
                "id",
                "recording_id",
                "transcript_id",
                "provider",
                "role",
                "status",
                "created_at",
                "ended_at",
                "error_stage",
                "error_message",
            )
        }
        for r in rows
    ]
    if as_json:
        emit_json(doc)
        return
    table = Table("run", "transcript", "provider", "status", "started", "ended")
    for r in doc:
        table.add_row(
            r["id"],
            r["transcript_id"],
            r["provider"],
            r["status"],
            r["created_at"],
            r["ended_at"] or "",
        )
    out.print(table)


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


@runs_app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one run: every stage with status, attempts, times and whether it was reused."""
    settings = settings_from(data_dir=data_dir)
    store = open_store(settings)
    run = store.run(run_id)
    if run is None:
        raise UserError(f"{run_id}: no such run")
    if reap_interrupted(store, settings, str(run["recording_id"])):
        run = store.run(run["id"]) or run
    if run["provider"] == "hatchet" and run["status"] in ("submitted", "running"):
        from reflector_cli.providers.hatchet import sync_run

        sync_run(store, run["id"], settings)  # the engine is the source of truth while it runs
        run = store.run(run["id"])
    stages = [
        {
            "stage": s["stage"],
            "track": s["track"],
            "status": s["status"],
            "attempts": s["attempts"],
            "started_at": s["started_at"],
            "ended_at": s["ended_at"],
            "reused": s["reused_from"] is not None,
        }
        for s in store.stage_runs(run["id"])
    ]
    doc = {
        "run_id": run["id"],
        "status": run["status"],
        "provider": run["provider"],
        "stages": stages,
    }
    if as_json:
        emit_json(doc)
        return
    out.print(f"[bold]{run['id']}[/] {run['provider']} · {run['status']}")
    if run["error_message"]:
        out.print(f"[red]{run['error_stage']}: {run['error_message']}[/]")
    table = Table("stage", "track", "status", "attempts", "started", "ended", "reused")
    for s in stages:
        table.add_row(
            s["stage"],
            "" if s["track"] is None else str(s["track"]),
            s["status"],
            str(s["attempts"]),
            s["started_at"] or "",
            s["ended_at"] or "",
            "yes" if s["reused"] else "",
        )
    out.print(table)
