"""`reflector compare` and `reflector worker celery|hatchet`."""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.text import Text

from reflector_cli.commands.base import (
    DataDirOpt,
    JsonOpt,
    app,
    emit_json,
    err,
    out,
    settings_from,
    worker_app,
)

# --------------------------------------------------------------------------- compare / workers


@app.command()
def compare(
    recording: Annotated[str, typer.Argument(help="Folder (or Daily.co recording id).")],
    celery: Annotated[bool, typer.Option("--celery", help="Run on Celery workers.")] = False,
    hatchet: Annotated[bool, typer.Option("--hatchet", help="Run on a Hatchet engine.")] = False,
    local: Annotated[bool, typer.Option("--local", help="Run on the local provider.")] = False,
    reuse: Annotated[
        bool, typer.Option("--reuse", help="Reuse each provider's latest finished run.")
    ] = False,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a recording on several providers and check they agree, stage by stage.

    Prints status, attempts, output hash equality and wall time per stage and provider, then
    transcript agreement (WER, speakers) and overhead against local. Exit 0 when all outputs
    agree, 1 when they differ (naming the first differing stage). Stored; see `runs --comparisons`.
    """
    from reflector_cli.runs.compare import render_table
    from reflector_cli.runs.process import run_compare

    providers = [p for p, on in (("local", local), ("celery", celery), ("hatchet", hatchet)) if on]
    if len(providers) < 2:
        raise typer.BadParameter("name at least two of --local, --celery, --hatchet")
    report = run_compare(recording, providers, settings_from(data_dir=data_dir), reuse)
    if as_json:
        emit_json(report.model_dump(mode="json"))
    else:
        out.print(render_table(report))
    if not report.agree:
        if not as_json:
            err.print(
                Text.assemble(
                    ("outputs differ", "bold red"), f" first at {report.first_difference}"
                )
            )
            for line in report.diff:
                err.print(f"  {line}", markup=False)
        raise typer.Exit(1)


@worker_app.command("celery")
def worker_celery(
    concurrency: Annotated[
        int, typer.Option(help="Worker processes (one whisper model each).")
    ] = os.cpu_count() or 1,
    data_dir: DataDirOpt = None,
) -> None:
    """Consume stages from CELERY_BROKER_URL (Redis). Needs the same data dir as submitters."""
    from reflector_cli.providers.celery_app import run_worker

    run_worker(settings_from(data_dir=data_dir), concurrency)


@worker_app.command("hatchet")
def worker_hatchet(
    slots: Annotated[
        int,
        typer.Option(
            help="Tasks this worker runs at once (one model replica each, shared weights)."
        ),
    ] = os.cpu_count() or 1,
    data_dir: DataDirOpt = None,
) -> None:
    """Register the pipeline workflows with the Hatchet engine and run its tasks."""
    from reflector_cli.providers.hatchet import run_worker

    run_worker(settings_from(data_dir=data_dir), slots)
