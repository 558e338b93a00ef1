"""Render a FinalDoc as plain text, SubRip, WebVTT, TSV or Markdown, always with speaker names.

Pure functions of the document: no storage, database or CLI access.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from reflector_cli.core.models import FinalDoc, Word

SENTENCE_END = (".", "?", "!")
# A sentence end closes a cue only once the cue is this long, so short replies stay together.
SENTENCE_SOFT_CHARS = 40
# Two subtitle lines of about this width read comfortably; longer cue text is split in two.
LINE_CHARS = 42
TURN_GAP_S = 3.0
# Cue times must be strictly increasing (WebVTT); a zero-length word still gets a visible cue.
MIN_CUE_S = 0.01


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    speaker: int
    name: str
    text: str


# --------------------------------------------------------------------------- shared helpers


def speaker_names(doc: FinalDoc) -> dict[int, str]:
    """Speaker index -> display name; blank names fall back like missing ones."""
    return {p.speaker: " ".join(p.name.split()) for p in doc.participants if p.name.strip()}


def speaker_name(names: dict[int, str], speaker: int) -> str:
    return names.get(speaker) or f"Speaker {speaker + 1}"


def _clean(text: str) -> str:
    # ASR text never needs newlines, and a stray blank line would end an SRT/VTT cue early.
    return " ".join(text.split())


def _words(doc: FinalDoc) -> list[Word]:
    # Stable sort: merged words are normally ordered already, but exports must not depend on it.
    return sorted((w for w in doc.words if _clean(w.text)), key=lambda w: w.start)


def _join(words: Iterable[Word]) -> str:
    return " ".join(_clean(w.text) for w in words)


def _turns(words: list[Word], max_gap: float = TURN_GAP_S) -> list[list[Word]]:
    """Consecutive words of one speaker, split where the speaker pauses longer than max_gap."""
    turns: list[list[Word]] = []
    for w in words:
        cur = turns[-1] if turns else None
        if cur and cur[-1].speaker == w.speaker and w.start - cur[-1].end <= max_gap:
            cur.append(w)
        else:
            turns.append([w])
    return turns


def turns(doc: FinalDoc) -> list[list[Word]]:
    """The document's speaker turns, in time order (what txt, md and html print)."""
    return _turns(_words(doc))


def _duration(doc: FinalDoc) -> float:
    last = max((w.end for w in doc.words), default=0.0)
    return max(doc.duration_s, last)


def clock(seconds: float, hours: bool = False) -> str:
    """`mm:ss`, or `hh:mm:ss` when hours is set (chosen once per document, for alignment)."""
    s = max(0, int(seconds))
    if hours:
        return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"
    return f"{s // 60:02d}:{s % 60:02d}"


def _timestamp(seconds: float, sep: str) -> str:
    ms = max(0, round(seconds * 1000))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _wrap(text: str, width: int = LINE_CHARS) -> list[str]:
    """At most two lines, split at the space nearest the middle so the lines balance."""
    if len(text) <= width or " " not in text:
        return [text]
    mid = len(text) // 2
    spaces = [i for i, c in enumerate(text) if c == " "]
    cut = min(spaces, key=lambda i: abs(i - mid))
    return [text[:cut], text[cut + 1 :]]


# --------------------------------------------------------------------------- cues


def cues(
    doc: FinalDoc, max_chars: int = 84, max_seconds: float = 7.0, max_gap: float = 1.5
) -> list[Cue]:
    """Group consecutive words of one speaker into subtitle cues.

    A cue ends on a speaker change, a pause longer than max_gap, a sentence end once the cue
    holds ~40 characters, or when the next word would exceed max_chars or max_seconds.
    """
    names = speaker_names(doc)
    groups: list[list[Word]] = []
    closed = True
    for w in _words(doc):
        cur = None if closed else groups[-1]
        if (
            cur is None
            or w.speaker != cur[-1].speaker
            or w.start - cur[-1].end > max_gap
            or len(_join(cur)) + 1 + len(_clean(w.text)) > max_chars
            or w.end - cur[0].start > max_seconds
        ):
            groups.append([w])
        else:
            cur.append(w)
        closed = _clean(w.text).endswith(SENTENCE_END) and len(_join(groups[-1])) >= (
            SENTENCE_SOFT_CHARS
        )
    out: list[Cue] = []
    for g in groups:
        start = g[0].start
        end = max(max(w.end for w in g), start + MIN_CUE_S)
        name = speaker_name(names, g[0].speaker)
        out.append(Cue(start=start, end=end, speaker=g[0].speaker, name=name, text=_join(g)))
    return out


# --------------------------------------------------------------------------- formats


def to_txt(doc: FinalDoc) -> str:
    """`[mm:ss] Name: text` per speaker turn; `[hh:mm:ss]` throughout when the meeting is ≥ 1 h."""
    names = speaker_names(doc)
    hours = _duration(doc) >= 3600
    lines = [
        f"[{clock(t[0].start, hours)}] {speaker_name(names, t[0].speaker)}: {_join(t)}"
        for t in _turns(_words(doc))
    ]
    return "".join(line + "\n" for line in lines)


def to_srt(doc: FinalDoc) -> str:
    """SubRip: numbered cues, `hh:mm:ss,mmm` times, the speaker name leading the cue text."""
    blocks = []
    for i, c in enumerate(cues(doc), start=1):
        text = "\n".join(_wrap(f"{c.name}: {c.text}", LINE_CHARS + len(c.name) + 2))
        times = f"{_timestamp(c.start, ',')} --> {_timestamp(c.end, ',')}"
        blocks.append(f"{i}\n{times}\n{text}\n")
    return "\n".join(blocks)


def vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_vtt(doc: FinalDoc) -> str:
    """WebVTT with `<v Name>` voice spans; an empty transcript is just the header."""
    blocks = ["WEBVTT\n"]
    for i, c in enumerate(cues(doc), start=1):
        text = "\n".join(_wrap(vtt_escape(c.text)))
        times = f"{_timestamp(c.start, '.')} --> {_timestamp(c.end, '.')}"
        blocks.append(f"{i}\n{times}\n<v {vtt_escape(c.name)}>{text}\n")
    return "\n".join(blocks)


def _tsv_cell(text: str) -> str:
    return _clean(text.replace("\t", " "))


def to_tsv(doc: FinalDoc) -> str:
    """whisper's TSV plus a speaker column: `start<TAB>end<TAB>speaker<TAB>text`, integer ms."""
    rows = ["start\tend\tspeaker\ttext"]
    rows += [
        f"{round(c.start * 1000)}\t{round(c.end * 1000)}\t{_tsv_cell(c.name)}\t{_tsv_cell(c.text)}"
        for c in cues(doc)
    ]
    return "".join(r + "\n" for r in rows)


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#|])")
_HEADING = re.compile(r"^(#{1,6})(\s)")


def md_escape(text: str) -> str:
    """Escape characters Markdown would read as formatting or HTML in plain ASR/LLM text."""
    return _MD_SPECIAL.sub(r"\\\1", _clean(text))


def _demote_headings(markdown: str, levels: int = 2) -> str:
    # The long summary uses `#` headings of its own; nest them under our `## Summary`.
    out, fenced = [], False
    for line in markdown.strip().splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        m = None if fenced else _HEADING.match(line)
        if m:
            depth = min(6, len(m.group(1)) + levels)
            line = "#" * depth + line[len(m.group(1)) :]
        out.append(line)
    return "\n".join(out)


_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def sentences(text: str) -> list[str]:
    return [x for x in _SENTENCE.split(_clean(text)) if x]


def _norm(text: str) -> str:
    return " ".join(text.replace("\\", "").casefold().split())


def _heading_rank(block: str) -> int | None:
    """Markdown heading depth, 7 for a bold-only line (a subject), None for a paragraph."""
    m = _HEADING.match(block)
    if m and "\n" not in block:
        return len(m.group(1))
    if block.startswith("**") and block.endswith("**") and "\n" not in block:
        return 7
    return None


def summary_blocks(doc: FinalDoc) -> tuple[list[str], set[str]]:
    """`## Summary`: the short summary, then the long one, never saying a sentence or paragraph
    twice (a long summary's "Quick recap" is usually the short summary again), and no heading
    left without text under it. Also returns the sentences printed, normalised."""
    raw = ["## Summary", doc.short_summary.strip() or "_No summary._"]
    if doc.long_summary.strip():
        raw += [b.strip() for b in _demote_headings(doc.long_summary).split("\n\n") if b.strip()]
    said: set[str] = set()
    blocks: list[tuple[int | None, str]] = []  # (heading rank or None, text)
    for block in raw:
        rank = _heading_rank(block)
        if rank is not None:
            blocks.append((rank, block))
            continue
        if "\n" in block:  # a list or table: whole-block repeats only
            fresh = [] if _norm(block) in said else [block]
            said.add(_norm(block))
        else:
            fresh = [x for x in sentences(block) if _norm(x) not in said]
            said.update(_norm(x) for x in fresh)
        if fresh:
            blocks.append((None, " ".join(fresh)))
    out = [
        text
        for i, (rank, text) in enumerate(blocks)
        if rank is None or _has_text_under(blocks[i + 1 :], rank)
    ]
    return [line for b in out for line in (b, "")], said


def unsaid(text: str, said: set[str]) -> str:
    """The sentences of `text` that `summary_blocks` did not already print, even inside a
    longer sentence (`**Roadmap** Q3 priorities.` already says `Q3 priorities.`)."""
    printed = "\n".join(said)
    return " ".join(x for x in sentences(text) if _norm(x) not in printed)


def _has_text_under(rest: list[tuple[int | None, str]], rank: int) -> bool:
    for r, _text in rest:
        if r is None:
            return True
        if r <= rank:
            return False
    return False


def _participant_names(doc: FinalDoc) -> list[str]:
    names = speaker_names(doc)
    speakers = sorted({p.speaker for p in doc.participants} | {w.speaker for w in doc.words})
    return [speaker_name(names, s) for s in speakers]


def _action_items(doc: FinalDoc) -> list[str]:
    items = doc.action_items
    if not items.decisions and not items.next_steps:
        return ["_None recorded._"]
    lines: list[str] = []
    if items.decisions:
        lines += ["### Decisions", ""]
        for d in items.decisions:
            by = f" — {md_escape(d.decided_by)}" if d.decided_by else ""
            lines.append(f"- {md_escape(d.decision)}{by}")
        lines.append("")
    if items.next_steps:
        lines += ["### Next steps", ""]
        for n in items.next_steps:
            extra = []
            if n.assigned_to:
                extra.append(f"owner: **{md_escape(n.assigned_to)}**")
            if n.deadline:
                extra.append(f"due: {md_escape(n.deadline)}")
            tail = f" ({', '.join(extra)})" if extra else ""
            lines.append(f"- [ ] {md_escape(n.task)}{tail}")
        lines.append("")
    return lines[:-1]


def to_markdown(doc: FinalDoc) -> str:
    """Title, metadata, summaries, action items, timed topics and the transcript by turn."""
    names = speaker_names(doc)
    hours = _duration(doc) >= 3600
    title = _clean(doc.title or "") or "Untitled meeting"
    participants = ", ".join(md_escape(n) for n in _participant_names(doc)) or "—"
    lines = [
        f"# {md_escape(title)}",
        "",
        f"- **Duration:** {clock(_duration(doc), hours)}",
        f"- **Participants:** {participants}",
        f"- **Language:** {md_escape(doc.language)}",
        "",
    ]
    summary, said = summary_blocks(doc)
    lines += [*summary, "## Action items", "", *_action_items(doc), "", "## Topics", ""]
    if doc.topics:
        for t in doc.topics:
            lines.append(f"- **[{clock(t.start, hours)}] {md_escape(t.title)}**")
            # Only what the summaries above did not already say.
            if fresh := unsaid(t.summary, said):
                lines.append(f"  {md_escape(fresh)}")
    else:
        lines.append("_No topics._")
    lines += ["", "## Transcript", ""]
    turns = _turns(_words(doc))
    if not turns:
        lines += ["_No speech was transcribed._", ""]
    for t in turns:
        name = md_escape(speaker_name(names, t[0].speaker))
        lines += [f"[{clock(t[0].start, hours)}] **{name}:** {md_escape(_join(t))}", ""]
    return "\n".join(lines).rstrip("\n") + "\n"
