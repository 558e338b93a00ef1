"""The `reflector` command line: parses, calls the core, renders (rich or --json).

Exit codes: 0 success, 1 bad input or a failed run, 2 usage error (from Typer/Click).
Commands live in `reflector_cli/commands/`, one module per group; importing them registers them.
"""

from __future__ import annotations

import os
import sys

from rich.text import Text

import reflector_cli.commands  # noqa: F401  (registers every command)
from reflector_cli.commands.base import app, emit_json, err, json_error, wants_json
from reflector_cli.errors import ReflectorError, one_line

# --------------------------------------------------------------------------- entry point


def _fail(message: str, exit_code: int = 1) -> None:
    """One line on stderr (and, under --json, the error document on stdout), exit 1: never a
    traceback for a problem the user can fix."""
    if wants_json(sys.argv[1:]):
        emit_json(json_error(one_line(message), exit_code))
    err.print(
        Text.assemble(("error: ", "bold red"), one_line(message)), soft_wrap=True, highlight=False
    )
    sys.exit(exit_code)


def main() -> None:
    try:
        app()
    except ReflectorError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        err.print("interrupted: finished stages are kept; run the same command to resume")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - last line of defence: one line, no traceback
        if os.environ.get("REFLECTOR_DEBUG"):
            raise
        _fail(f"unexpected {type(exc).__name__}: {exc} (set REFLECTOR_DEBUG=1 for a traceback)")


if __name__ == "__main__":
    main()
