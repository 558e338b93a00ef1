"""`reflector doctor`, `reflector serve` and `reflector poll`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from reflector_cli.commands.base import (
    DataDirOpt,
    JsonOpt,
    app,
    emit_json,
    out,
    settings_from,
)

# --------------------------------------------------------------------------- doctor


@app.command()
def doctor(data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Check the installation: model, audio codecs, data dir, database, providers."""
    from reflector_cli.runs.doctor import run_checks

    checks = run_checks(settings_from(data_dir=data_dir))
    ok = all(c["ok"] or not c["required"] for c in checks)
    if as_json:
        emit_json({"ok": ok, "checks": checks})
    else:
        table = Table("check", "", "detail")
        for c in checks:
            mark = (
                "[green]ok[/]" if c["ok"] else ("[red]FAIL[/]" if c["required"] else "[yellow]–[/]")
            )
            table.add_row(c["name"], mark, c["detail"])
        out.print(table)
    if not ok:
        raise typer.Exit(1)


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Listen address (default: $REFLECTOR_HOST or 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Listen port (default: $REFLECTOR_PORT or 8000).")
    ] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Start runs from Daily.co webhooks; stream a transcript's events over WebSocket."""
    import logging

    from reflector_cli.core import lifeline
    from reflector_cli.intake.server import serve as run_server

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    lifeline.bind_children()  # runs started by webhooks stop (interrupted) with the server
    run_server(settings_from(data_dir=data_dir), host, port)


@app.command()
def poll(
    once: Annotated[bool, typer.Option("--once", help="One pass, then exit.")] = False,
    interval: Annotated[
        float | None,
        typer.Option(help="Seconds between passes (default: 180 with a webhook secret, else 15)."),
    ] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Start runs for finished Daily.co raw-tracks recordings found by listing them."""
    import logging

    from reflector_cli.intake.poll import poll as run_poll

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    started = run_poll(settings_from(data_dir=data_dir), once, interval)
    if once:
        out.print(
            f"started {len(started)} recording(s)" + (": " + ", ".join(started) if started else "")
        )
