"""`reflector show` as plain text: names, duration, language, talk-time bars and a waveform
sparkline with numbered topic ticks. Pure: a view dict and a width in, lines out."""

from __future__ import annotations

from typing import Any

from reflector_cli.views.textview import bar, duration, sparkline, ticks, wrap

TICK_MARKS = "123456789abcdefghijklmnopqrstuvwxyz"


def clock(seconds: float) -> str:
    s = max(0, int(seconds))
    if s >= 3600:
        return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
    return f"{s // 60:02d}:{s % 60:02d}"


def _speaker_lines(view: dict[str, Any], width: int) -> list[str]:
    talk = {t["speaker"]: t["seconds"] for t in view["talk_time"]}
    people = view["participants"]
    if not people:
        return []
    total = sum(talk.values()) or 1.0
    name_w = min(max(len(p["name"]) for p in people), max(8, width // 3))
    # "  name  bar  1m02s  41%": the bar gets what the name and figures leave.
    bar_w = max(4, width - name_w - 2 - 2 - 2 - 6 - 2 - 4)
    most = max(talk.values(), default=0.0) or 1.0
    lines = [f"speakers ({len(people)}), talk time:"]
    for p in people:
        secs = talk.get(p["speaker"], 0.0)
        name = p["name"] if len(p["name"]) <= name_w else p["name"][: name_w - 1] + "…"
        lines.append(
            f"  {name:<{name_w}}  {bar(secs / most, bar_w):<{bar_w}}  "
            f"{duration(secs):>6}  {secs / total:>4.0%}"
        )
    return lines


def _wave_lines(view: dict[str, Any], width: int) -> list[str]:
    peaks, total = view.get("waveform") or [], view.get("duration_s") or 0.0
    if not peaks:
        return []
    w = width - 2
    starts = [t["start"] for t in view["topics"]]
    line = ["waveform, topics numbered below it:" if starts else "waveform:"]
    line.append("  " + sparkline(peaks, w))
    mark = ticks(starts, total, w)
    if mark:
        cells = list(mark)
        for i, s in enumerate(starts):
            col = min(w - 1, max(0, int(s / total * w))) if total > 0 else 0
            if col < len(cells):
                cells[col] = TICK_MARKS[i % len(TICK_MARKS)]
        line.append("  " + "".join(cells))
    return line


def show_lines(view: dict[str, Any], width: int) -> list[str]:
    lines = wrap(view["title"] or "(untitled)", width)
    facts = [view["transcript_id"], view["status"], clock(view["duration_s"] or 0.0)]
    if view.get("language"):
        facts.append(view["language"])
    facts.append(f"{view['word_count']} words")
    if view.get("audio_deleted"):
        facts.append("audio deleted (consent)")
    lines += wrap(" · ".join(facts), width)
    if view.get("error_message"):
        lines += wrap(f"error in {view['error_stage']}: {view['error_message']}", width)
    lines += ["", *_speaker_lines(view, width), *_wave_lines(view, width)]
    if view.get("short_summary"):
        lines += ["", *wrap(view["short_summary"], width)]
    if view["topics"]:
        lines += ["", "topics:"]
        for i, t in enumerate(view["topics"]):
            head = f"{TICK_MARKS[i % len(TICK_MARKS)]} [{clock(t['start'])}] {t['title']}"
            lines += wrap(head, width, indent="  ")
            if t.get("summary"):
                lines += wrap(t["summary"], width, indent="      ")
    return lines
