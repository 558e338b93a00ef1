"""CLI command groups; importing a module registers its commands on the shared Typer app,
so the import order below is the order `reflector --help` lists them in."""

# isort: off
from reflector_cli.commands import process, results, meetings, runs, replay  # noqa: F401
from reflector_cli.commands import providers, ops, stats, models_cmd  # noqa: F401
# isort: on
