"""`reflector show` and `reflector export`: read stored transcripts."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

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
from reflector_cli.core.errors import UserError
from reflector_cli.views.outputs import FORMATS, RenderContext, parse_formats, write_outputs

# --------------------------------------------------------------------------- show / export


@app.command()
def show(
    ident: Annotated[str, typer.Argument(help="Transcript id, recording id or run id.")],
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a stored transcript: speakers with talk time, waveform, summary and topics."""
    from reflector_cli.store.lifecycle import reap_interrupted
    from reflector_cli.store.results import result_view
    from reflector_cli.views.showview import show_lines
    from reflector_cli.views.talk import talk_seconds

    settings = settings_from(data_dir=data_dir)
    store = open_store(settings)
    row = find_transcript(store, ident)
    if row["status"] == "processing" and reap_interrupted(store, settings, row["recording_id"]):
        row = find_transcript(store, row["id"])  # its run was killed: no longer "processing"
    view = result_view(store, row["id"])
    view |= {
        "recording_id": row["recording_id"],
        "audio_deleted": bool(row["audio_deleted"]),
        "error_stage": row["error_stage"],
        "error_message": row["error_message"],
        "action_items": json.loads(row["action_items"] or "{}"),
    }
    words = store.words(row["id"])
    talk = talk_seconds(words)
    view |= {
        "language": row["language"],
        "talk_time": [
            {"speaker": p["speaker"], "name": p["name"], "seconds": talk.get(p["speaker"], 0.0)}
            for p in view["participants"]
        ],
    }
    if as_json:
        emit_json(view)
        return
    view["waveform"] = json.loads(row["waveform"] or "[]")
    for line in show_lines(view, out.width):
        out.print(Text(line), soft_wrap=True, highlight=False)


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
    embed_audio: Annotated[
        bool,
        typer.Option(
            "--embed-audio", help="html: put the audio inside the file (portable, bigger)."
        ),
    ] = False,
    data_dir: DataDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
) -> None:
    """Export a transcript with speaker names, to stdout, a file, or a folder of files."""
    if output and (output.is_dir() or not output.parent.is_dir()):
        write_output(output, "")  # refuses with one line before any work is done
    settings = settings_from(data_dir=data_dir)
    store = open_store(settings)
    row = find_transcript(store, ident)
    formats = ["json"] if as_json else parse_formats(fmt)
    ctx = RenderContext(settings=settings, embed_audio=embed_audio)
    if output_dir is not None:
        if output is not None:
            raise UserError("--output and --output-dir: give one of them")
        for path in write_outputs(store, row["id"], formats, output_dir, ctx):
            err.print(f"wrote {path}", markup=False, highlight=False, soft_wrap=True)
        return
    if len(formats) > 1:
        raise UserError(f"--format {fmt}: several formats need --output-dir DIR")
    text = FORMATS[formats[0]].render(store, row["id"], ctx)
    if output:
        write_output(output, text)
        err.print(f"wrote {output}", markup=False, highlight=False, soft_wrap=True)
    else:
        sys.stdout.write(text)
