"""Files out: the export format registry, `--format a,b|all` parsing, and safe file names.

One registry maps a format name to its file extension and a renderer of a stored transcript,
so `export` and `process --output-dir` write the same bytes and a new format is one line.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reflector_cli.core import formats as exporters
from reflector_cli.core.errors import UserError
from reflector_cli.core.models import FinalDoc

# A file name stays readable and well under every filesystem's 255-byte limit.
MAX_SLUG_CHARS = 60


@dataclass(frozen=True)
class RenderContext:
    """What a renderer may need beyond the stored rows (the html report finds the audio)."""

    settings: Any = None
    embed_audio: bool = False


Render = Callable[[Any, str, RenderContext], str]  # (store, transcript id, context) -> text


def _json(store: Any, tid: str, _ctx: RenderContext) -> str:
    from reflector_cli.store.results import result_view

    doc = result_view(store, tid)
    row = store.transcript(tid)
    doc["action_items"] = json.loads(row["action_items"] or "{}")
    doc["words"] = store.words(tid)
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def _from_doc(render: Callable[[FinalDoc], str]) -> Render:
    def run(store: Any, tid: str, _ctx: RenderContext) -> str:
        from reflector_cli.store.results import final_doc_from_store

        return render(final_doc_from_store(store, tid))

    return run


def _html(store: Any, tid: str, ctx: RenderContext) -> str:
    from reflector_cli.views.report import html_report

    return html_report(store, ctx.settings, tid, embed_audio=ctx.embed_audio)


@dataclass(frozen=True)
class Format:
    ext: str
    render: Render


FORMATS: dict[str, Format] = {
    "json": Format("json", _json),
    "txt": Format("txt", _from_doc(exporters.to_txt)),
    "srt": Format("srt", _from_doc(exporters.to_srt)),
    "vtt": Format("vtt", _from_doc(exporters.to_vtt)),
    "md": Format("md", _from_doc(exporters.to_markdown)),
    "tsv": Format("tsv", _from_doc(exporters.to_tsv)),
    "html": Format("html", _html),
}


def parse_formats(spec: str) -> list[str]:
    """`all`, or a comma list of format names (order kept, duplicates dropped)."""
    names = [s.strip().lower() for s in spec.split(",") if s.strip()]
    if names == ["all"]:
        return list(FORMATS)
    unknown = [n for n in names if n not in FORMATS]
    if unknown or not names:
        raise UserError(
            f"--format {spec!r}: unknown format {', '.join(unknown) or '(none)'} "
            f"(choose from {', '.join(FORMATS)}, a comma list, or all)"
        )
    return list(dict.fromkeys(names))


def slug(text: str, limit: int = MAX_SLUG_CHARS) -> str:
    """Lowercase ASCII letters, digits and single hyphens: no separators, dots or spaces."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    s = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return s[:limit].rstrip("-")


def meeting_date(row: dict[str, Any], started_at_ms: int | None) -> str:
    """YYYY-MM-DD of the meeting (its start when known, else when it was first stored)."""
    if started_at_ms:
        return datetime.fromtimestamp(started_at_ms / 1000, UTC).strftime("%Y-%m-%d")
    return str(row.get("created_at") or "")[:10] or "undated"


def base_name(row: dict[str, Any], started_at_ms: int | None) -> str:
    """`<date>-<title slug>`, or the transcript id when the title has no usable characters."""
    title = slug(row.get("title") or "") or slug(row["id"])
    return f"{meeting_date(row, started_at_ms)}-{title}"


def _write_atomic(path: Path, text: str) -> None:
    # A killed export never leaves a half-written file under the final name.
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _output_dir(path: Path) -> Path:
    path = path.expanduser()
    if path.exists() and not path.is_dir():
        raise UserError(f"--output-dir {path}: exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"--output-dir {path}: cannot create it ({e.strerror})") from None
    return path


def write_outputs(
    store: Any,
    tid: str,
    formats: list[str],
    out_dir: Path,
    ctx: RenderContext,
    taken: set[str] | None = None,
) -> list[Path]:
    """Write one file per format into `out_dir`; returns the paths in format order.

    `taken` holds base names already used in this invocation: a second meeting with the same
    title and date gets its transcript id appended instead of overwriting the first.
    """
    from reflector_cli.store.meetings import recording_started_at

    out_dir = _output_dir(out_dir)
    row = store.transcript(tid)
    base = base_name(row, recording_started_at(store, row["recording_id"]))
    if taken is not None:
        if base in taken:
            base = f"{base}-{slug(tid)}"
        taken.add(base)
    paths = []
    for name in formats:
        fmt = FORMATS[name]
        path = out_dir / f"{base}.{fmt.ext}"
        try:
            _write_atomic(path, fmt.render(store, tid, ctx))
        except OSError as e:
            raise UserError(f"{path}: cannot write ({e.strerror})") from None
        paths.append(path)
    return paths
