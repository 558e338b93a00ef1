"""Render a FinalDoc as one self-contained HTML page: waveform with topic markers, speaker
timeline, audio player, clickable transcript, topics, summaries and action items.

Pure function of its inputs. Every piece of text is escaped (transcripts and LLM output are
untrusted), and a Content-Security-Policy forbids any network load even if something slipped.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from reflector_cli.core.formats import (
    clock,
    speaker_name,
    speaker_names,
    summary_blocks,
    turns,
    unsaid,
)
from reflector_cli.core.models import FinalDoc
from reflector_cli.views.report_assets import CSS, JS
from reflector_cli.views.talk import speaker_spans, talk_seconds

CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "media-src file: data: blob:; img-src data:"
)
WAVE_W, WAVE_H = 1000, 120
NAME_W, LANE_H = 150, 26


@dataclass(frozen=True)
class ReportMeta:
    """What the page needs beyond the document: when, and where the audio is (or why not)."""

    recorded_at: str | None = None
    audio_src: str | None = None
    audio_note: str | None = None
    generated_at: str | None = None


def e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _num(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".")


def _duration(doc: FinalDoc) -> float:
    return max(doc.duration_s, max((w.end for w in doc.words), default=0.0), 0.0)


def _hours(doc: FinalDoc) -> bool:
    return _duration(doc) >= 3600


def _stamp(t: float, hours: bool) -> str:
    return (
        f'<button class="ts" data-t="{_num(t)}" title="play from here">[{clock(t, hours)}]</button>'
    )


def _x(t: float, total: float, x0: float, width: float) -> float:
    return x0 + (min(max(t, 0.0), total) / total * width if total > 0 else 0.0)


# --------------------------------------------------------------------------- svg parts


def _markers(doc: FinalDoc, total: float, x0: float, width: float, height: float) -> list[str]:
    parts = []
    for i, t in enumerate(doc.topics, start=1):
        x = _num(_x(t.start, total, x0, width))
        parts.append(
            f'<g class="clickable" data-t="{_num(t.start)}"><title>{e(t.title)}</title>'
            f'<line class="marker" x1="{x}" x2="{x}" y1="0" y2="{_num(height)}"/>'
            f'<text class="marker-label" x="{_num(float(x) + 3)}" y="13">{i}</text></g>'
        )
    return parts


def waveform_svg(doc: FinalDoc) -> str:
    """One mirrored bar per stored peak, topic markers on top, a playhead the script moves."""
    total, peaks = _duration(doc), doc.waveform
    mid = WAVE_H / 2
    parts = [f'<rect class="bar-bg" x="0" y="0" width="{WAVE_W}" height="{WAVE_H}"/>']
    step = WAVE_W / max(1, len(peaks))
    for i, p in enumerate(peaks):
        h = max(1.0, min(1.0, max(0.0, p)) * (WAVE_H - 20))
        parts.append(
            f'<rect class="peak" x="{_num(i * step)}" y="{_num(mid - h / 2)}" '
            f'width="{_num(max(step * 0.7, 0.5))}" height="{_num(h)}"/>'
        )
    parts += _markers(doc, total, 0, WAVE_W, WAVE_H)
    parts.append(f'<line class="playhead" x1="0" x2="0" y1="0" y2="{WAVE_H}"/>')
    return (
        f'<svg id="waveform" class="seekable clickable" data-x0="0" viewBox="0 0 {WAVE_W} '
        f'{WAVE_H}" role="img" aria-label="waveform with topic markers">{"".join(parts)}</svg>'
    )


def timeline_svg(doc: FinalDoc) -> str:
    """One lane per speaker; a rectangle wherever they spoke."""
    total, names = _duration(doc), speaker_names(doc)
    speakers = _speakers(doc)
    spans = speaker_spans(doc.words)
    width = WAVE_W - NAME_W
    height = max(1, len(speakers)) * LANE_H
    parts = []
    for lane, spk in enumerate(speakers):
        y = lane * LANE_H
        name = speaker_name(names, spk)
        parts.append(
            f'<g class="lane" data-speaker="{spk}"><text class="lane-name" x="0" '
            f'y="{y + LANE_H * 0.65:.1f}">{e(name)}</text>'
            f'<rect class="lane-bg" x="{NAME_W}" y="{y + 3}" width="{width}" '
            f'height="{LANE_H - 6}"/>'
        )
        color = _color(lane)
        for s, t in spans.get(spk, []):
            x1, x2 = _x(s, total, NAME_W, width), _x(t, total, NAME_W, width)
            parts.append(
                f'<rect class="span" fill="{color}" x="{_num(x1)}" y="{y + 5}" '
                f'width="{_num(max(x2 - x1, 1.0))}" height="{LANE_H - 10}" data-t="{_num(s)}">'
                f"<title>{e(name)} {clock(s)}–{clock(t)}</title></rect>"
            )
        parts.append("</g>")
    parts += _markers(doc, total, NAME_W, width, height)
    parts.append(f'<line class="playhead" x1="{NAME_W}" x2="{NAME_W}" y1="0" y2="{height}"/>')
    return (
        f'<svg id="timeline" class="seekable clickable" data-x0="{NAME_W}" viewBox="0 0 '
        f'{WAVE_W} {height}" role="img" aria-label="who spoke when">{"".join(parts)}</svg>'
    )


PALETTE = ("#3b5bdb", "#0ca678", "#e8590c", "#ae3ec9", "#1098ad", "#f08c00", "#d6336c")


def _color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _speakers(doc: FinalDoc) -> list[int]:
    return sorted({p.speaker for p in doc.participants} | {w.speaker for w in doc.words})


# --------------------------------------------------------------------------- sections


def _people(doc: FinalDoc) -> str:
    names, talk = speaker_names(doc), talk_seconds(doc.words)
    total = sum(talk.values()) or 1.0
    most = max(talk.values(), default=0.0) or 1.0
    rows = []
    for lane, spk in enumerate(_speakers(doc)):
        secs = talk.get(spk, 0.0)
        w = _num(secs / most * 100)
        rows.append(
            f'<li data-speaker="{spk}"><span class="who">{e(speaker_name(names, spk))}</span>'
            f'<svg viewBox="0 0 100 10" preserveAspectRatio="none" height="12">'
            f'<rect class="bar-bg" x="0" y="0" width="100" height="10"/>'
            f'<rect fill="{_color(lane)}" x="0" y="0" width="{w}" height="10"/></svg>'
            f'<span class="num">{clock(secs)} · {secs / total:.0%}</span></li>'
        )
    return f'<ul class="people">{"".join(rows)}</ul>' if rows else _empty("No participants.")


def _audio(meta: ReportMeta) -> str:
    if meta.audio_src:
        missing = (
            '<p id="audio-missing" class="note" hidden>The audio file could not be loaded from '
            f"{e(meta.audio_src[:200])}; re-export with <code>--embed-audio</code>.</p>"
        )
        return (
            f'<audio id="player" controls preload="metadata" src="{e(meta.audio_src)}">'
            f"</audio>{missing}"
        )
    return f'<p class="note" id="audio-note">{e(meta.audio_note or "No audio available.")}</p>'


def _inline_md(text: str) -> str:
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", e(text))


def markdown_html(text: str) -> str:
    """The small markdown subset summaries use (headings, bold, lists, paragraphs), escaped."""
    out: list[str] = []
    para: list[str] = []
    items: list[str] = []

    def flush() -> None:
        if para:
            out.append(f"<p>{_inline_md(' '.join(para))}</p>")
            para.clear()
        if items:
            out.append("<ul>" + "".join(f"<li>{_inline_md(i)}</li>" for i in items) + "</ul>")
            items.clear()

    for raw in text.splitlines():
        line = raw.strip()
        heading = re.match(r"^#{1,6}\s+(.*)$", line)
        if not line or heading:
            flush()
            if heading:
                out.append(f"<h3>{_inline_md(heading.group(1))}</h3>")
        elif re.match(r"^[-*]\s+", line):
            if para:
                flush()
            items.append(re.sub(r"^[-*]\s+", "", line))
        else:
            para.append(line)
    flush()
    return "".join(out)


def _summary(doc: FinalDoc, blocks: list[str]) -> str:
    # The same blocks as the Markdown export: a sentence or paragraph is said once.
    if not (doc.short_summary.strip() or doc.long_summary.strip()):
        return _empty("No summary.")
    return markdown_html("\n".join(blocks[2:]))


def _topics(doc: FinalDoc, hours: bool, said: set[str]) -> str:
    if not doc.topics:
        return _empty("No topics.")
    rows = []
    for i, t in enumerate(doc.topics, start=1):
        # Only what the summary above did not already say.
        fresh = unsaid(t.summary, said)
        extra = f"<br>{e(fresh)}" if fresh else ""
        rows.append(
            f'<li data-topic="{i}">{_stamp(t.start, hours)}<strong>{i}. {e(t.title)}</strong>'
            f"{extra}</li>"
        )
    return f'<ol class="topics" style="list-style:none;padding:0">{"".join(rows)}</ol>'


def _actions(doc: FinalDoc) -> str:
    items, parts = doc.action_items, []
    if items.decisions:
        lis = "".join(
            f"<li>{e(d.decision)}" + (f" — {e(d.decided_by)}" if d.decided_by else "") + "</li>"
            for d in items.decisions
        )
        parts.append(f"<h3>Decisions</h3><ul>{lis}</ul>")
    if items.next_steps:
        lis = []
        for n in items.next_steps:
            extra = [f"owner: <strong>{e(n.assigned_to)}</strong>"] if n.assigned_to else []
            extra += [f"due: {e(n.deadline)}"] if n.deadline else []
            lis.append(f"<li>{e(n.task)}" + (f" ({', '.join(extra)})" if extra else "") + "</li>")
        parts.append(f"<h3>Next steps</h3><ul>{''.join(lis)}</ul>")
    return "".join(parts) or _empty("None recorded.")


def _transcript(doc: FinalDoc, hours: bool) -> str:
    names = speaker_names(doc)
    rows = []
    for t in turns(doc):
        text = " ".join(" ".join(w.text.split()) for w in t)
        rows.append(
            f'<p class="turn" data-speaker="{t[0].speaker}" data-start="{_num(t[0].start)}" '
            f'data-end="{_num(t[-1].end)}">{_stamp(t[0].start, hours)}'
            f'<span class="who">{e(speaker_name(names, t[0].speaker))}:</span> {e(text)}</p>'
        )
    return "".join(rows) or _empty("No speech was transcribed.")


def _empty(text: str) -> str:
    return f'<p class="empty">{e(text)}</p>'


def render_html(doc: FinalDoc, meta: ReportMeta) -> str:
    hours = _hours(doc)
    title = " ".join((doc.title or "").split()) or "Untitled meeting"
    facts = [f"Duration {clock(_duration(doc), hours)}", f"Language {doc.language}"]
    if meta.recorded_at:
        facts.insert(0, meta.recorded_at)
    if doc.room:
        facts.append(f"Room {doc.room}")
    facts.append(f"{len(_speakers(doc))} participants")
    blocks, said = summary_blocks(doc)
    sections = [
        f'<section id="overview"><h1>{e(title)}</h1><p class="meta">'
        f"{e(' · '.join(facts))}</p></section>",
        f'<section id="participants"><h2>Participants and talk time</h2>{_people(doc)}</section>',
        f'<section id="player-box"><h2>Recording</h2>{waveform_svg(doc)}{_audio(meta)}</section>',
        f'<section id="speakers"><h2>Who spoke when</h2>{timeline_svg(doc)}</section>',
        f'<section id="summary" class="summary"><h2>Summary</h2>{_summary(doc, blocks)}</section>',
        f'<section id="topics"><h2>Topics</h2>{_topics(doc, hours, said)}</section>',
        f'<section id="actions"><h2>Action items</h2>{_actions(doc)}</section>',
        f'<section id="transcript"><h2>Transcript</h2>{_transcript(doc, hours)}</section>',
    ]
    footer = f"Transcript {e(doc.transcript_id)}"
    if meta.generated_at:
        footer += f" · exported {e(meta.generated_at)}"
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="{e(doc.language)}"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)}</title><style>{CSS}</style></head>"
        f'<body data-duration="{_num(_duration(doc))}"><main>{"".join(sections)}'
        f"<footer>{footer}</footer></main>"
        f"<script>{JS}</script></body></html>\n"
    )
