"""What every command shares: the Typer apps, consoles, common options and helpers."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from importlib.metadata import version as pkg_version
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console

from reflector_cli.config import Settings, load_settings
from reflector_cli.errors import UserError

app = typer.Typer(
    help="Turn multitrack meeting recordings into speaker-attributed transcripts, topics, "
    "titles and summaries stored in SQLite.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
runs_app = typer.Typer(help="List pipeline runs, or show one run's stages.")
app.add_typer(runs_app, name="runs")
worker_app = typer.Typer(help="Run a worker that executes stages for a durable provider.")
app.add_typer(worker_app, name="worker")

err = Console(stderr=True)
out = Console()

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="Where artifacts and reflector.sqlite3 live.", show_default=False
    ),
]


def emit_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def settings_from(**overrides: Any) -> Settings:
    try:
        return load_settings(**overrides)
    except ValidationError as exc:  # name the setting, never echo its (maybe secret) value
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        raise UserError(f"setting {where}: {first['msg']}") from None


def _version_cb(value: bool) -> None:
    if value:
        typer.echo(f"reflector {pkg_version('reflector-cli')}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_cb, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    """reflector: multitrack meeting recordings in, transcripts and summaries out."""


class Provider(StrEnum):
    local = "local"
    hatchet = "hatchet"
    celery = "celery"


class OnOff(StrEnum):
    on = "on"
    off = "off"


def open_store(settings: Settings) -> Any:
    from reflector_cli.store.repo import Store

    if not settings.db_path.exists():
        raise UserError(f"{settings.db_path}: no database yet (run `reflector process` first)")
    return Store(settings.db_path)


def find_transcript(store: Any, ident: str) -> dict[str, Any]:
    row = store.find_transcript(ident)
    if row is None:
        raise UserError(f"{ident}: no such transcript, recording or run")
    return row
