"""`show` as text: every line fits, every speaker named with a bar, topic ticks numbered."""

from __future__ import annotations

from typing import Any

from reflector_cli.views.showview import show_lines


def view(**kw: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "transcript_id": "t-0123456789abcdef",
        "title": "Quarterly planning with a title long enough to need wrapping at forty columns",
        "status": "ended",
        "duration_s": 4000.0,
        "language": "de",
        "word_count": 812,
        "participants": [
            {"speaker": 0, "name": "Alice Martin"},
            {"speaker": 1, "name": "Bartholomew Okafor-Llewellyn the Third of Wales"},
            {"speaker": 2, "name": "Carol"},
        ],
        "talk_time": [
            {"speaker": 0, "seconds": 1200.0},
            {"speaker": 1, "seconds": 600.0},
            {"speaker": 2, "seconds": 0.0},
        ],
        "waveform": [0.0] * 5 + [i / 254 for i in range(5, 255)],
        "topics": [
            {"title": "Budget", "summary": "Money.", "start": 0.0},
            {"title": "Hiring", "summary": "", "start": 2000.0},
        ],
        "short_summary": "We planned the quarter.",
    }
    doc.update(kw)
    return doc


def test_show_lines_fit_and_name_everyone() -> None:
    for width in (40, 80, 132):
        lines = show_lines(view(), width)
        assert all(len(x) <= width for x in lines), width
        text = "\n".join(lines)
        assert "Alice Martin" in text and "Carol" in text and "de · 812 words" in text
        assert "1:06:40" in text  # an hour-long meeting shows hours
    lines = show_lines(view(), 80)
    alice = next(x for x in lines if "Alice Martin" in x)
    bart = next(x for x in lines if x.lstrip().startswith("Bartholomew"))
    assert alice.count("█") > bart.count("█") > 0 and "67%" in alice and "…" in bart


def test_sparkline_and_numbered_ticks_line_up() -> None:
    lines = show_lines(view(), 80)
    i = next(n for n, x in enumerate(lines) if x.startswith("waveform"))
    spark, tick = lines[i + 1], lines[i + 2]
    assert len(spark) == 80 and spark[2] == " " and spark[-1] == "█"
    assert tick.index("1") == 2 and tick.index("2") == 2 + 39
    assert any(x.strip().startswith("2 [33:20] Hiring") for x in lines)


def test_no_waveform_no_topics_no_speakers() -> None:
    lines = show_lines(view(waveform=[], topics=[], participants=[], talk_time=[]), 80)
    assert not any(x.startswith(("waveform", "topics", "speakers")) for x in lines)
