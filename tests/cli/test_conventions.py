"""CLI conventions: defaults in every --help, no `<bool>`, completion, -v/-q, data dir errors."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import typer
from typer.testing import CliRunner

import reflector_cli.commands  # noqa: F401  (registers every command)
from reflector_cli.commands.base import app
from tests.cli.conftest import cli


def all_commands() -> list[tuple[list[str], Any]]:
    """Every command and subcommand (Typer vendors its own Click: duck-typed on purpose)."""
    root = typer.main.get_command(app)
    found: list[tuple[list[str], Any]] = []

    def walk(cmd: Any, path: list[str]) -> None:
        found.append((path, cmd))
        if hasattr(cmd, "list_commands"):
            ctx = click.Context(cmd)
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                assert sub is not None
                walk(sub, [*path, name])

    walk(root, [])
    return found


def test_every_help_shows_defaults_and_no_bool_metavar() -> None:
    runner = CliRunner()
    commands = all_commands()
    assert len(commands) >= 18  # every command, group and subcommand
    for path, cmd in commands:
        res = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
        assert res.exit_code == 0, path
        text = " ".join(res.output.split())
        assert "<bool>" not in text, path
        assert max(len(line) for line in res.output.splitlines()) <= 80, path
        for p in cmd.params:
            if p.param_type_name != "option" or p.is_flag or p.hidden:
                continue
            if p.default is not None or isinstance(p.show_default, str):
                assert re.search(rf"{re.escape(p.opts[-1])}\b.*?\[default: ", text), (path, p.opts)
    process = " ".join(runner.invoke(app, ["process", "--help"]).output.split())
    assert "Who runs the stages [default: $DURABLE_WORKFLOW_PROVIDER or local]." in process


def test_shell_completion_is_offered() -> None:
    top = CliRunner().invoke(app, ["--help"]).output
    assert "--install-completion" in top and "--show-completion" in top
    # Typer takes the shell from the nearest shell among the process's ancestors (it ignores
    # a shell named after the flag): start the real script from bash, as a user would. Run
    # from `sh` (as under some CI runners) it answers "Shell sh not supported".
    script = shlex.quote(str(Path(sys.executable).with_name("reflector")))
    res = subprocess.run(
        ["bash", "-c", f"{script} --show-completion; exit $?"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0 and "_REFLECTOR_COMPLETE" in res.stdout, res.stderr


def test_missing_database_names_the_data_dir_and_how_to_set_it(tmp_path: Path) -> None:
    res = cli("show", "t-x", data_dir=tmp_path / "nowhere", check=False, cwd=tmp_path)
    assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1
    line = " ".join(res.stderr.split())
    assert str((tmp_path / "nowhere").resolve()) in line
    assert "--data-dir" in line and "REFLECTOR_DATA_DIR" in line


def test_verbose_logs_and_quiet_is_quiet(processed: tuple[Path, dict[str, object]]) -> None:
    data, _ = processed
    loud = cli("-v", "runs", "--json", data_dir=data)
    assert re.search(r"DEBUG reflector: database .*reflector\.sqlite3", loud.stderr)
    quiet = cli("-q", "runs", "--json", data_dir=data)
    assert quiet.stderr == "" and quiet.stdout == cli("runs", "--json", data_dir=data).stdout
    both = cli("-v", "-q", "runs", data_dir=data, check=False)
    assert both.returncode == 2 and "choose one" in both.stderr
