"""CLI command groups; importing a module registers its commands on the shared Typer app,
so the import order below is the order `reflector --help` lists them in."""

# isort: off
from reflector_cli.commands import process, results, runs, replay, providers, ops  # noqa: F401
from reflector_cli.commands import stats  # noqa: F401
# isort: on
