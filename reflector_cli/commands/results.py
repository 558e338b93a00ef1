"""`reflector show` and `reflector export`: read stored transcripts."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

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
)

# --------------------------------------------------------------------------- show / export


@app.command()
def show(
    ident: Annotated[str, typer.Argument(help="Transcript id, recording id or run id.")],
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a stored transcript: title, summary, topics, participants."""
    from reflector_cli.pipeline import result_view
    from reflector_cli.runstate import reap_interrupted

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


class ExportFormat(StrEnum):
    json = "json"
    txt = "txt"
    srt = "srt"
    vtt = "vtt"
    md = "md"


@app.command()
def export(
    ident: Annotated[str, typer.Argument(help="Transcript id, recording id or run id.")],
    fmt: Annotated[ExportFormat, typer.Option("--format", "-f", help="Output format.")] = (
        ExportFormat.json
    ),
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to a file instead of stdout.")
    ] = None,
    data_dir: DataDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
) -> None:
    """Export a transcript with speaker names (json, txt, srt, vtt, md)."""
    from reflector_cli import export as exporters
    from reflector_cli.pipeline import final_doc_from_store, result_view

    store = open_store(settings_from(data_dir=data_dir))
    row = find_transcript(store, ident)
    if as_json:
        fmt = ExportFormat.json
    if fmt is ExportFormat.json:
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
        output.write_text(text, encoding="utf-8")
        err.print(f"wrote {output}")
    else:
        sys.stdout.write(text)
