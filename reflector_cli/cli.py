"""The `reflector` command line: parses, calls the core, renders (rich or --json).

Exit codes: 0 success, 1 bad input or a failed run, 2 usage error (from Typer/Click).
Commands live in `reflector_cli/commands/`, one module per group; importing them registers them.
"""

from __future__ import annotations

import atexit
import os
import re
import signal
import sqlite3
import sys
import threading

from reflector_cli.core import lifeline

lifeline.exit_on_stop_signals()  # until main() takes over (see there)

# The `reflector` script or `python -m reflector_cli.cli`, not an import from elsewhere
# (start_for decides from the arguments whether any worker is needed).
if os.path.basename(sys.argv[0]) in ("reflector", "cli.py"):
    from reflector_cli.providers.early import start_for

    start_for(sys.argv[1:])

from rich.text import Text  # noqa: E402 - after the handlers: importing takes seconds

import reflector_cli.commands  # noqa: E402, F401  (registers every command)
from reflector_cli.commands.base import app, emit_json, err, json_error, wants_json  # noqa: E402
from reflector_cli.core.errors import ReflectorError, one_line  # noqa: E402

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


# SQLite's words for a write the disk refused: SQLITE_FULL, or SQLITE_IOERR for EFBIG/EIO.
_DISK = re.compile(r"disk is full|disk I/O error")


def _interrupted(signum: int) -> None:
    """Ctrl-C, SIGTERM or SIGHUP: the run is already recorded as interrupted. Exit now: a
    light stage still on a thread (nobody waits for it) must not hold the exit up."""
    with lifeline.deferred_stop_signals():
        err.print(
            f"interrupted ({signal.Signals(signum).name}): finished stages are kept; "
            "run the same command to resume",
            markup=False,
        )
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(128 + signum)  # what a shell reports for a command stopped by that signal


def _exit_now(code: int) -> None:
    """The command is done (its store closed, its output written): run the exit handlers and
    flush, then end without tearing down every module and object one by one, which took
    ~1 s after `process` had printed its result. Non-daemon threads are waited for, as a
    normal exit would."""
    for thread in threading.enumerate():
        if not thread.daemon and thread is not threading.main_thread():
            thread.join()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main() -> None:
    lifeline.handle_stop_signals()
    try:
        lifeline.bind_from_env()
        app()
    except ReflectorError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        _interrupted(lifeline.stopped_by or signal.SIGINT)
    except SystemExit as exc:
        if lifeline.stopped_by is not None:
            _interrupted(lifeline.stopped_by)  # the CLI framework turned the stop into an exit
        if exc.code is None or isinstance(exc.code, int):
            _exit_now(exc.code or 0)
        raise
    except Exception as exc:  # noqa: BLE001 - last line of defence: one line, no traceback
        if os.environ.get("REFLECTOR_DEBUG"):
            raise
        if isinstance(exc, sqlite3.OperationalError) and _DISK.search(str(exc)):
            _fail(
                f"database: {exc} (disk full?): free some space, then run the same command "
                "to resume; finished stages are kept"
            )
        _fail(f"unexpected {type(exc).__name__}: {exc} (set REFLECTOR_DEBUG=1 for a traceback)")


if __name__ == "__main__":
    main()
