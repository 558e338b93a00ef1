"""`reflector search` over every stored meeting, and `reflector rename` of a speaker."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
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
)
from reflector_cli.core.errors import UserError
from reflector_cli.core.formats import clock
from reflector_cli.store.meetings import HIT_CLOSE, HIT_OPEN
from reflector_cli.views.outputs import meeting_date


def _clock(seconds: float | None) -> str:
    if seconds is None:  # the words matched the title or summary, not something said
        return "—"
    return clock(seconds, hours=seconds >= 3600)


@app.command()
def search(
    words: Annotated[list[str], typer.Argument(help="Words the meeting must contain (all).")],
    limit: Annotated[int, typer.Option(min=1, help="Most hits to show.")] = 20,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Find meetings by words in their transcript, title or summary: who said it and when."""
    from reflector_cli.store.meetings import search as search_store

    store = open_store(settings_from(data_dir=data_dir))
    hits = search_store(store, " ".join(words), limit=limit)
    docs = [_hit_doc(h) for h in hits]
    if as_json:
        emit_json(docs)
        return
    if not docs:
        err.print(
            f"no meeting contains {' '.join(words)!r}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        return
    table = Table("meeting", "speaker", "at", "snippet")
    for d, h in zip(docs, hits, strict=True):
        meeting = f"{escape(d['title'] or '(untitled)')}\n[dim]{d['date']} {d['transcript_id']}[/]"
        table.add_row(meeting, escape(d["speaker"] or "—"), _clock(d["start"]), _marked(h))
    out.print(table)


def _marked(hit: dict[str, Any]) -> Text:
    """The snippet with the matched words in bold."""
    text = Text()
    for i, part in enumerate(re.split(f"[{HIT_OPEN}{HIT_CLOSE}]", hit["snippet"])):
        text.append(part, style="bold yellow" if i % 2 else "")
    return text


def _hit_doc(h: dict[str, Any]) -> dict[str, Any]:
    return {
        "transcript_id": h["id"],
        "title": h["title"],
        "date": meeting_date(h, h["started_at_ms"]),
        "speaker": h["name"],
        "speaker_index": h["speaker"],
        "start": h["start"],
        "snippet": h["snippet"].replace(HIT_OPEN, "[").replace(HIT_CLOSE, "]"),
    }


def _speaker_index(participants: list[dict[str, Any]], speaker: str) -> int:
    """A current name (case-insensitive), else the number `Speaker N` shows (1 = first track)."""
    by_name = [p for p in participants if p["name"].casefold() == speaker.strip().casefold()]
    if len(by_name) == 1:
        return int(by_name[0]["speaker"])
    if len(by_name) > 1:
        raise UserError(f"speaker {speaker!r}: several participants have that name; use a number")
    if speaker.strip().isdigit():
        n = int(speaker) - 1
        if any(p["speaker"] == n for p in participants):
            return n
    names = ", ".join(f"{p['speaker'] + 1}={p['name']}" for p in participants)
    raise UserError(f"speaker {speaker!r}: no such speaker (have {names or 'none'})")


@app.command()
def rename(
    ident: Annotated[str, typer.Argument(help="Transcript id, recording id or run id.")],
    speaker: Annotated[str, typer.Argument(help="Current name, or the speaker number (1, 2, …).")],
    new_name: Annotated[str, typer.Argument(metavar="NEW_NAME", help="The name to show.")],
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Rename a speaker everywhere: views, exports, and the generated summaries' mentions."""
    from reflector_cli.store.meetings import rename_speaker
    from reflector_cli.store.schema import writable

    new = " ".join(new_name.split())
    if not new:
        raise UserError("NEW_NAME: must not be empty")
    settings = settings_from(data_dir=data_dir)
    store = open_store(settings)
    row = find_transcript(store, ident)
    if not writable(Path(settings.data_dir)):
        raise UserError(f"{settings.data_dir}: data dir is read-only; cannot rename")
    index = _speaker_index(store.participants(row["id"]), speaker)
    result = rename_speaker(store, row["id"], index, new) | {"transcript_id": row["id"]}
    if as_json:
        emit_json(result)
        return
    n = result["mentions"]
    where = (
        f"renamed in {n} place{'s' if n != 1 else ''} in the summaries"
        if n
        else "the summaries do not mention the old name (nothing else changed)"
    )
    err.print(f"{result['old']} → {new}; {where}", markup=False, highlight=False, soft_wrap=True)
