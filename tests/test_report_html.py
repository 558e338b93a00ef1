"""The HTML report: escaping and structure from the renderer, then the real page in headless
Chromium (DOM after scripts, screenshot, a mouse click on a stamp seeking the real audio)."""

from __future__ import annotations

import re
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import pytest

from reflector_cli.core.models import ActionItems, NextStep, Topic, Word
from reflector_cli.views.report_html import ReportMeta, markdown_html, render_html
from tests.chromium import cdp_page, dump_dom, requested_urls, screenshot
from tests.test_export import make_doc, meeting

EVIL = '<img src=x onerror="alert(1)">'
SHAPES = re.compile(r"<(rect|line|path|circle|polyline|polygon)\b")


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


def parse_tags(page: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """Every start tag with its attributes, as a browser's tokenizer would see them."""
    p = _Tags()
    p.feed(page)
    return p.tags


def report_doc(**kw: object) -> object:
    words = meeting()
    fields: dict[str, object] = {
        "topics": [
            Topic(title="Roadmap", summary="Q3 priorities.", start=0.5, duration=20,
                  word_start=0, word_end=12),
            Topic(title="Scheduling", summary="When to ship.", start=30.0, duration=8,
                  word_start=12, word_end=len(words)),
        ],
        "waveform": [round(abs(((i * 37) % 100) - 50) / 50, 2) for i in range(255)],
        "action_items": ActionItems(
            next_steps=[NextStep(task="Ship the export feature", assigned_to="Bob Okafor")]
        ),
        "duration_s": 40.0,
    }  # fmt: skip
    fields.update(kw)
    return make_doc(words, **fields)


def test_every_text_is_escaped_and_nothing_points_at_the_network() -> None:
    words = [
        Word(text=EVIL, start=1.0, end=1.5, speaker=0),
        Word(text="</p><script>alert(2)</script>", start=2, end=2.5, speaker=1),
    ]
    doc = make_doc(
        words,
        names={0: "<b>Mallory</b>", 1: 'Eve" onclick="x'},
        title="<script>alert(3)</script>",
        short_summary="<iframe src=http://evil.example/>",
        long_summary="# <h1>x</h1>\n\n**bold** <a href='http://evil.example'>y</a>",
        topics=[Topic(title=EVIL, summary=EVIL, start=0, duration=1, word_start=0, word_end=1)],
        action_items=ActionItems(next_steps=[NextStep(task=EVIL, assigned_to=EVIL)]),
    )
    page = render_html(doc, ReportMeta(audio_note="<b>gone</b>"))
    assert page.count("<script>") == 1  # ours, at the end
    for raw in (EVIL, "<b>Mallory</b>", "<iframe", "<h1>x</h1>", "<a href", 'Eve" onclick'):
        assert raw not in page, raw
    assert "&lt;b&gt;Mallory&lt;/b&gt;" in page and "&lt;img src=x" in page
    assert "<strong>bold</strong>" in page  # the markdown subset still renders
    tags = parse_tags(page)
    names = [t for t, _ in tags]
    assert not set(names) & {"img", "iframe", "a"} and names.count("h1") == 1
    assert not [v for _, attrs in tags for a, v in attrs if a in ("src", "href") and v]
    assert not [a for _, attrs in tags for a, v in attrs if a.startswith("on")]
    assert "Content-Security-Policy" in page and "default-src 'none'" in page


def test_structure_waveform_lanes_stamps_and_audio_note() -> None:
    doc = report_doc()
    page = render_html(doc, ReportMeta(audio_src="file:///x/mixdown.mp3"))
    assert len(SHAPES.findall(page)) >= 255 + 2  # a bar per peak plus markers
    assert page.count('class="lane"') == 2 and page.count('class="marker"') == 4
    assert '<audio id="player"' in page and 'src="file:///x/mixdown.mp3"' in page
    stamps = re.findall(r'class="ts" data-t="([\d.]+)"', page)
    assert "0.5" in stamps and "30" in stamps
    deleted = render_html(doc, ReportMeta(audio_note="The audio was deleted (consent)."))
    assert "<audio" not in deleted and "The audio was deleted (consent)." in deleted


def test_short_summary_and_topic_summaries_are_not_printed_twice() -> None:
    doc = report_doc(
        short_summary="We agreed on Q3.",
        long_summary="# Quick recap\n\nWe agreed on Q3.\n\n# Summary\n\n**Roadmap** Q3 priorities.",
    )
    page = render_html(doc, ReportMeta())
    assert page.count("We agreed on Q3.") == 1 and page.count("Q3 priorities.") == 1
    assert page.count("When to ship.") == 1


def test_markdown_subset() -> None:
    assert markdown_html("# Head\n\n- one\n- **two**\n\npara\nline") == (
        "<h3>Head</h3><ul><li>one</li><li><strong>two</strong></li></ul><p>para line</p>"
    )


# --------------------------------------------------------------------------- real browser


@pytest.fixture
def report_page(tmp_path: Path, make_track: Callable[..., Path]) -> tuple[Path, Path]:
    """The report on disk next to a real 40 s MP3 (encoded by PyAV), linked by file URL."""
    audio = make_track(tmp_path / "mixdown.mp3", 40.0, freq=220.0, sample_rate=44100)
    page = tmp_path / "report.html"
    page.write_text(render_html(report_doc(), ReportMeta(audio_src=audio.as_uri())))
    return page, audio


def test_chromium_renders_every_part_and_loads_nothing_from_the_network(
    report_page: tuple[Path, Path], tmp_path: Path
) -> None:
    page, _ = report_page
    dom = dump_dom(page)
    assert len(SHAPES.findall(dom)) >= 30
    for name in ("Alice Martin", "Bob Okafor", "Roadmap", "Scheduling", "subtitles", "cheap."):
        assert name in dom, name
    assert "<audio" in dom and "Ship the export feature" in dom
    assert not re.search(r"""(src|href)="https?:""", dom)
    png = screenshot(page, tmp_path / "shot.png")
    assert png.stat().st_size > 20_000


def test_a_click_on_a_stamp_seeks_the_player(report_page: tuple[Path, Path]) -> None:
    page, audio = report_page
    with cdp_page(page) as cdp:
        cdp.wait_for("document.getElementById('player').readyState >= 1")
        assert cdp.eval("document.getElementById('player').duration") == pytest.approx(40, abs=1)
        box = cdp.eval(
            "(() => { const b = document.querySelector('.ts[data-t=\"30\"]');"
            " b.scrollIntoView({block: 'center'}); const r = b.getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        cdp.click(*box)
        t = cdp.wait_for("(() => { const t = document.getElementById('player').currentTime;"
                         " return t >= 29.9 ? t : 0; })()")  # fmt: skip
        assert 29.9 <= t < 35
        # The waveform click seeks by position too: the middle is about half the duration.
        box = cdp.eval(
            "(() => { const s = document.getElementById('waveform');"
            " s.scrollIntoView({block: 'center'}); const r = s.getBoundingClientRect();"
            " return [r.x + r.width * 0.25 + 1, r.y + r.height / 2]; })()"
        )
        cdp.eval("document.getElementById('player').pause()")
        cdp.click(*box)
        t = cdp.wait_for("(() => { const t = document.getElementById('player').currentTime;"
                         " return t > 0 && t < 15 ? t : 0; })()")  # fmt: skip
        assert 9 <= t <= 11.5
        urls = requested_urls(cdp)
    assert page.as_uri() in urls and audio.as_uri() in urls
    assert all(u.startswith(("file:", "data:")) for u in urls), urls


def test_a_moved_audio_file_is_explained_in_the_page(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    gone = (tmp_path / "moved-away.mp3").as_uri()
    page.write_text(render_html(report_doc(), ReportMeta(audio_src=gone)))
    with cdp_page(page) as cdp:
        cdp.wait_for("!document.getElementById('audio-missing').hidden")
        text = cdp.eval("document.getElementById('audio-missing').textContent")
    assert "--embed-audio" in text and "moved-away.mp3" in text
