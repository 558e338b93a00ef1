"""`reflector show` and `reflector export`: read stored transcripts."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from reflector_cli.commands.base import (
    DataDirOpt,
    FormatOpt,
    JsonOpt,
    OutputDirOpt,
    app,
    emit_json,
    err,
    find_transcript,
    open_store,
    out,
    settings_from,
    write_output,
)
from reflector_cli.errors import UserError
from reflector_cli.outputs import FORMATS, parse_formats, write_outputs

# --------------------------------------------------------------------------- show / export


@app.command()
def show(
    ident: Annotated[str, typer.Argument(help="Transcript id, recording id or run id.")],
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a stored transcript: title, summary, topics, participants."""
    from reflector_cli.pipeline import result_view

    store = open_store(settings_from(data_dir=data_dir))
    row = find_transcript(store, ident)
    view = result_view(store, row["id"])
    view |= {
        "recording_id": row["recording_id"],
        "audio_deleted": bool(row["audio_deleted"]),
        "error_stage": row["error_stage"],
        "error_message": row["error_message"],
        "action_items": json.loads(row["action_items"] or "{}"),
    }
    if as_json:
        emit_json(view)
        return
    out.print(f"[bold]{view['title'] or '(untitled)'}[/]  [dim]{view['transcript_id']}[/]")
    out.print(
        f"status {view['status']} · {view['word_count']} words · "
        f"{len(view['participants'])} speakers"
    )
    if view["error_message"]:
        out.print(f"[red]error in {view['error_stage']}: {view['error_message']}[/]")
    if view["short_summary"]:
        out.print(f"\n{view['short_summary']}\n")
    table = Table("start", "topic", "summary")
    for tp in view["topics"]:
        table.add_row(_mmss(tp["start"]), tp["title"], tp["summary"])
    out.print(table)


def _mmss(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 60:02d}:{s % 60:02d}"


@app.command()
def export(
    ident: Annotated[str, typer.Argument(help="Transcript id, recording id or run id.")],
    fmt: FormatOpt = "json",
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Write to this file instead of stdout.", show_default=False
        ),
    ] = None,
    output_dir: OutputDirOpt = None,
    data_dir: DataDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
) -> None:
    """Export a transcript with speaker names, to stdout, a file, or a folder of files."""
    if output and (output.is_dir() or not output.parent.is_dir()):
        write_output(output, "")  # refuses with one line before any work is done
    store = open_store(settings_from(data_dir=data_dir))
    row = find_transcript(store, ident)
    formats = ["json"] if as_json else parse_formats(fmt)
    if output_dir is not None:
        if output is not None:
            raise UserError("--output and --output-dir: give one of them")
        for path in write_outputs(store, row["id"], formats, output_dir):
            err.print(f"wrote {path}", markup=False, highlight=False, soft_wrap=True)
        return
    if len(formats) > 1:
        raise UserError(f"--format {fmt}: several formats need --output-dir DIR")
    text = FORMATS[formats[0]].render(store, row["id"])
    if output:
        write_output(output, text)
        err.print(f"wrote {output}", markup=False, highlight=False, soft_wrap=True)
    else:
        sys.stdout.write(text)
