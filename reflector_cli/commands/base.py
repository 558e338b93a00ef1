"""What every command shares: the Typer apps, consoles, common options and helpers."""

from __future__ import annotations

import json
import logging
import sys
from enum import StrEnum
from importlib.metadata import version as pkg_version
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console

from reflector_cli.core.config import Settings, load_settings
from reflector_cli.core.errors import UserError
from reflector_cli.providers import registry
from reflector_cli.views.outputs import FORMATS, parse_formats

app = typer.Typer(
    help="Turn multitrack meeting recordings into speaker-attributed transcripts, topics, "
    "titles and summaries stored in SQLite.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    # Plain Click help: rich markup would eat "[default: …]" and show `<bool>` on every flag.
    rich_markup_mode=None,
)
runs_app = typer.Typer(help="List pipeline runs, or show one run's stages.", rich_markup_mode=None)
app.add_typer(runs_app, name="runs")
worker_app = typer.Typer(
    help="Run a worker that executes stages for a durable provider.", rich_markup_mode=None
)
app.add_typer(worker_app, name="worker")

log = logging.getLogger("reflector")
err = Console(stderr=True)
out = Console()

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="Where artifacts and reflector.sqlite3 live.", show_default=False
    ),
]


def check_formats(value: str | None) -> str | None:
    """Reject an unknown format as a usage error (exit 2) before anything is opened."""
    if value is not None:
        try:
            parse_formats(value)
        except UserError as exc:
            raise typer.BadParameter(str(exc).removeprefix(f"--format {value!r}: ")) from None
    return value


FormatOpt = Annotated[
    str,
    typer.Option(
        "--format",
        "-f",
        help=f"{', '.join(FORMATS)}: one, a comma list, or all.",
        callback=check_formats,
    ),
]
OutputDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--output-dir",
        help="Write one file per format here, named <date>-<title>.<ext>.",
        show_default=False,
    ),
]


def emit_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def json_error(message: str, exit_code: int = 1) -> dict[str, Any]:
    """The document every command prints on stdout when it fails under `--json` (the same
    line also goes to stderr): `{"error": "<one line>", "exit_code": 1}`."""
    return {"error": message, "exit_code": exit_code}


def wants_json(argv: list[str]) -> bool:
    """Whether `--json` is among the options (not after `--`, where it would be an argument)."""
    return "--json" in (argv[: argv.index("--")] if "--" in argv else argv)


def write_output(path: Path, text: str) -> None:
    """Write an `-o` file, with one line for the ordinary mistakes (a directory, a missing
    folder, no permission, a full disk)."""
    if path.is_dir():
        raise UserError(f"{path}: is a directory (give a file name to write)")
    if not path.parent.is_dir():
        raise UserError(f"{path}: folder {path.parent} does not exist")
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{path}: cannot write ({exc.strerror})") from None


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


class Verbosity:
    """Set once by the global -v/-q flags; commands read it (progress on or off)."""

    quiet = False
    verbose = False


def progress_enabled(as_json: bool = False) -> bool:
    """Live progress goes to a terminal only, never with --json or --quiet."""
    return not as_json and not Verbosity.quiet and err.is_terminal


@app.callback()
def main_callback(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_cb, is_eager=True, help="Show version.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log what happens (DEBUG) on stderr.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No live progress; log errors only.")
    ] = False,
) -> None:
    """reflector: multitrack meeting recordings in, transcripts and summaries out."""
    if verbose and quiet:
        raise typer.BadParameter("--verbose and --quiet: choose one")
    Verbosity.verbose, Verbosity.quiet = verbose, quiet
    if verbose or quiet:  # otherwise each command (serve, poll, workers) sets up its own logs
        level = logging.DEBUG if verbose else logging.ERROR
        logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", force=True)


# The --provider choices: every registered provider.
Provider = StrEnum("Provider", [(name, name) for name in registry.NAMES])


class OnOff(StrEnum):
    on = "on"
    off = "off"


def open_store(settings: Settings) -> Any:
    """The store for commands that read; opened read-only when the data dir cannot be written."""
    from reflector_cli.store.repo import Store
    from reflector_cli.store.schema import check_data_dir, writable

    check_data_dir(Path(settings.data_dir), create=False)
    if not settings.db_path.exists():
        where = Path(settings.data_dir).expanduser().resolve()
        raise UserError(
            f"no database in data dir {where} (run `reflector process` first, or point at "
            "another with --data-dir DIR or REFLECTOR_DATA_DIR)"
        )
    log.debug("database %s", settings.db_path)
    return Store(settings.db_path, readonly=not writable(Path(settings.data_dir)))


def find_transcript(store: Any, ident: str) -> dict[str, Any]:
    row = store.find_transcript(ident)
    if row is None:
        raise UserError(f"{ident}: no such transcript, recording or run")
    return row
