"""`reflector models list|pull|prepare`: which whisper models are on this machine, fetching more,
and storing the int8 copy a worker loads."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from reflector_cli.commands.base import JsonOpt, app, emit_json, err, load_settings, out

models_app = typer.Typer(
    help="Whisper models: list what is present, pull one by name, prepare its int8 copy."
)
app.add_typer(models_app, name="models")


def _mb(size: int) -> str:
    return f"{size / 1e6:,.0f} MB"


@models_app.command("list")
def list_cmd(as_json: JsonOpt = False) -> None:
    """Models usable with --model NAME: bundled, in the reflector cache or the HF cache."""
    from reflector_cli.core.whisper_models import list_models, models_dir

    found = list_models()
    if as_json:
        emit_json([m.model_dump(mode="json") for m in found])
        return
    table = Table("name", "size", "source", "path")
    for m in found:
        table.add_row(m.name, _mb(m.size_bytes), m.source, str(m.path))
    out.print(table)
    err.print(
        f"pull another with `reflector models pull NAME` (into {models_dir()})",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


@models_app.command("pull")
def pull_cmd(
    name: Annotated[str, typer.Argument(help="base, small, medium, large-v3, distil-large-v3…")],
    as_json: JsonOpt = False,
) -> None:
    """Download a model by name from the Hugging Face Hub (the only command that does)."""
    from reflector_cli.core.whisper_models import pull_model

    path = pull_model(name)
    if as_json:
        emit_json({"name": name, "path": str(path)})
        return
    err.print(
        f"{name}: ready at {path} (use --model {name})",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


@models_app.command("prepare")
def prepare_cmd(
    name: Annotated[
        str | None, typer.Argument(help="model name or path (default: the configured model)")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Store the model's int8 copy now, so no worker quantizes it at load (else: first use)."""
    from reflector_cli.core.whisper_models import BUNDLED, bundled_path, resolve_model
    from reflector_cli.stages.asr_weights import prepare

    src = resolve_model(name or load_settings().model)
    ref = BUNDLED if src == bundled_path() else (name or str(src))
    done = prepare(src)
    if as_json:
        emit_json({"model": str(src), "int8_copy": done.path and str(done.path), "note": done.note})
        return
    where = f"int8 copy {done.note} at {done.path}" if done.path else f"no int8 copy: {done.note}"
    err.print(f"{ref}: {where}", markup=False, highlight=False, soft_wrap=True)
