"""`reflector show` and `reflector export`: read stored transcripts."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from reflector_cli.commands.base import (
    DataDirOpt,
    JsonOpt,
    app,
    emit_json,
    err,
    find_transcript,
    open_store,
    out,
    settings_from,
    write_output,
)

# --------------------------------------------------------------------------- show / export


@app.command()
def show(
    ident: Annotated[str, typer.Argument(help="Transcript id, recording id or run id.")],
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a stored transcript: speakers with talk time, waveform, summary and topics."""
    from reflector_cli.pipeline import result_view
    from reflector_cli.showview import show_lines
    from reflector_cli.talk import talk_seconds

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


class ExportFormat(StrEnum):
    json = "json"
    txt = "txt"
    srt = "srt"
    vtt = "vtt"
    md = "md"
    html = "html"


@app.command()
def export(
    ident: Annotated[str, typer.Argument(help="Transcript id, recording id or run id.")],
    fmt: Annotated[ExportFormat, typer.Option("--format", "-f", help="Output format.")] = (
        ExportFormat.json
    ),
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to a file instead of stdout.")
    ] = None,
    embed_audio: Annotated[
        bool,
        typer.Option(
            "--embed-audio", help="html: put the audio inside the file (portable, bigger)."
        ),
    ] = False,
    data_dir: DataDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
) -> None:
    """Export a transcript with speaker names (json, txt, srt, vtt, md, html)."""
    from reflector_cli import export as exporters
    from reflector_cli.pipeline import final_doc_from_store, result_view

    if output and (output.is_dir() or not output.parent.is_dir()):
        write_output(output, "")  # refuses with one line before any work is done
    settings = settings_from(data_dir=data_dir)
    store = open_store(settings)
    row = find_transcript(store, ident)
    if as_json:
        fmt = ExportFormat.json
    if fmt is ExportFormat.html:
        from reflector_cli.report import html_report

        text = html_report(store, settings, row["id"], embed_audio=embed_audio)
    elif fmt is ExportFormat.json:
        doc = result_view(store, row["id"])
        doc["action_items"] = json.loads(row["action_items"] or "{}")
        doc["words"] = store.words(row["id"])
        text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    else:
        final = final_doc_from_store(store, row["id"])
        render = {
            ExportFormat.txt: exporters.to_txt,
            ExportFormat.srt: exporters.to_srt,
            ExportFormat.vtt: exporters.to_vtt,
            ExportFormat.md: exporters.to_markdown,
        }[fmt]
        text = render(final)
    if output:
        write_output(output, text)
        err.print(f"wrote {output}")
    else:
        sys.stdout.write(text)
