"""Exporters: SRT/VTT parsed back with a small strict parser, names, escaping, hours, empty doc."""

from __future__ import annotations

import html
import re

from reflector_cli.core.formats import cues, to_markdown, to_srt, to_tsv, to_txt, to_vtt
from reflector_cli.core.models import (
    ActionItems,
    Decision,
    FinalDoc,
    NextStep,
    Participant,
    Topic,
    Word,
)

NAMES = {0: "Alice Martin", 1: "Bob Okafor"}


def said(speaker: int, start: float, sentence: str, step: float = 0.4) -> list[Word]:
    """Words of a sentence, one every `step` seconds, each lasting 0.3 s."""
    return [
        Word(text=t, start=round(start + i * step, 3), end=round(start + i * step + 0.3, 3),
             speaker=speaker)
        for i, t in enumerate(sentence.split())
    ]  # fmt: skip


def make_doc(words: list[Word], names: dict[int, str] | None = None, **kw: object) -> FinalDoc:
    names = NAMES if names is None else names
    fields: dict[str, object] = {
        "transcript_id": "t1",
        "recording_id": "r1",
        "title": "Roadmap sync",
        "short_summary": "The team agreed on the Q3 roadmap.",
        "long_summary": "# Quick recap\n\nShort recap.\n\n# Summary\n\n**Roadmap** was discussed.",
        "action_items": ActionItems(),
        "duration_s": max((w.end for w in words), default=0.0),
        "language": "en",
        "participants": [
            Participant(speaker=s, participant_id=f"p{s}", name=n, track_key=f"r1/t{s}.flac")
            for s, n in names.items()
        ],
        "topics": [],
        "words": words,
        "waveform": [],
        "audio_key": None,
    }
    fields.update(kw)
    return FinalDoc.model_validate(fields)


def meeting() -> list[Word]:
    return [
        *said(0, 0.5, "Good morning everyone. Let's look at the roadmap for the third quarter."),
        *said(1, 6.0, "Sure."),
        *said(1, 7.0, "I think the export feature should ship first because customers ask for "
                      "subtitles and markdown notes every single week and it is cheap."),
        *said(0, 30.0, "Agreed."),
        # Same speaker again after a 5 s pause: a new turn and a new cue.
        *said(0, 35.0, "Then we schedule it."),
    ]  # fmt: skip


# --------------------------------------------------------------------------- strict parsers

SRT_TIME = re.compile(
    r"^(\d{2}):([0-5]\d):([0-5]\d),(\d{3}) --> (\d{2}):([0-5]\d):([0-5]\d),(\d{3})$"
)
VTT_TIME = re.compile(
    r"^(\d{2}):([0-5]\d):([0-5]\d)\.(\d{3}) --> (\d{2}):([0-5]\d):([0-5]\d)\.(\d{3})$"
)  # fmt: skip


def _secs(h: str, m: str, s: str, ms: str) -> float:
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


def parse_srt(text: str) -> list[tuple[float, float, str]]:
    """(start, end, text) per cue; asserts numbering, time syntax and block structure."""
    if text == "":
        return []
    assert text.endswith("\n") and not text.endswith("\n\n")
    out = []
    for i, block in enumerate(text[:-1].split("\n\n"), start=1):
        lines = block.split("\n")
        assert lines[0] == str(i), block
        m = SRT_TIME.match(lines[1])
        assert m, lines[1]
        assert len(lines) >= 3 and all(line.strip() for line in lines[2:]), block
        start, end = _secs(*m.groups()[:4]), _secs(*m.groups()[4:])
        assert end > start
        out.append((start, end, "\n".join(lines[2:])))
    return out


def parse_vtt(text: str) -> list[tuple[float, float, str, str]]:
    """(start, end, voice, unescaped text); asserts header, times, voice tags and escaping."""
    assert text.startswith("WEBVTT\n") and text.endswith("\n")
    blocks = text[:-1].split("\n\n")
    assert blocks[0] == "WEBVTT"
    out = []
    for block in blocks[1:]:
        lines = block.split("\n")
        if not VTT_TIME.match(lines[0]):
            assert "-->" not in lines[0]
            lines = lines[1:]  # cue identifier
        m = VTT_TIME.match(lines[0])
        assert m, block
        body = "\n".join(lines[1:])
        v = re.fullmatch(r"<v ([^<>\n]+)>([^<>]*)", body, flags=re.S)
        assert v, body
        for part in v.groups():
            # Only entity references may use '&'.
            assert not re.search(r"&(?!amp;|lt;|gt;)", part), part
        start, end = _secs(*m.groups()[:4]), _secs(*m.groups()[4:])
        assert end > start
        out.append((start, end, html.unescape(v[1]), html.unescape(v[2])))
    return out


# --------------------------------------------------------------------------- cues


def test_cues_cover_every_word_once_and_respect_limits() -> None:
    words = meeting()
    cs = cues(make_doc(words))
    assert " ".join(c.text for c in cs) == " ".join(w.text for w in words)
    for c in cs:
        assert len(c.text) <= 84 and c.end - c.start <= 7.0
        assert c.name == NAMES[c.speaker]
    # Speaker changes always break; the 5 s pause breaks a single speaker's run.
    assert [c.text for c in cs if c.speaker == 0][-2:] == ["Agreed.", "Then we schedule it."]
    # "Good morning everyone." is a sentence end under 40 characters, so the cue continues
    # to the next sentence end past 40 characters, then breaks.
    assert cs[0].text == "Good morning everyone. Let's look at the roadmap for the third quarter."
    # Next cue would pass 84 characters with "subtitles".
    assert cs[1].text == (
        "Sure. I think the export feature should ship first because customers ask for"
    )


def test_cue_limits_are_parameters() -> None:
    doc = make_doc(said(0, 0.0, "one two three four five six seven eight nine ten"))
    by_chars = cues(doc, max_chars=14)
    assert all(len(c.text) <= 14 for c in by_chars) and len(by_chars) > 3
    by_time = cues(doc, max_seconds=1.0)
    assert all(c.end - c.start <= 1.0 for c in by_time) and len(by_time) >= 4
    gappy = make_doc(said(0, 0.0, "a b c", step=1.0))  # 0.7 s silence between words
    assert len(cues(gappy, max_gap=0.5)) == 3 and len(cues(gappy, max_gap=1.0)) == 1


# --------------------------------------------------------------------------- SRT / VTT


def test_srt_parses_back_to_word_times_and_names() -> None:
    words = meeting()
    parsed = parse_srt(to_srt(make_doc(words)))
    assert len(parsed) == len(cues(make_doc(words)))
    starts = {w.start for w in words}
    ends = {w.end for w in words}
    texts = []
    for start, end, text in parsed:
        assert start in starts and end in ends
        name, _, body = text.replace("\n", " ").partition(": ")
        assert name in NAMES.values()
        texts.append(body)
    assert " ".join(texts) == " ".join(w.text for w in words)
    assert parsed[0][0] == 0.5 and parsed[-1][1] == words[-1].end
    assert "Speaker" not in to_srt(make_doc(words))


def test_vtt_parses_back_with_voice_tags() -> None:
    words = meeting()
    parsed = parse_vtt(to_vtt(make_doc(words)))
    assert [(s, e, v, t.replace("\n", " ")) for s, e, v, t in parsed] == [
        (c.start, c.end, c.name, c.text) for c in cues(make_doc(words))
    ]
    assert {v for _, _, v, _ in parsed} == set(NAMES.values())


def test_vtt_escapes_markup_in_text_and_names() -> None:
    words = said(0, 1.0, "x<y && a>b </v> --> done")
    doc = make_doc(words, names={0: "R&D <lead>"})
    out = to_vtt(doc)
    assert "&lt;/v&gt;" in out and "--&gt;" in out and "R&amp;D &lt;lead&gt;" in out
    [(_, _, voice, text)] = parse_vtt(out)
    assert voice == "R&D <lead>" and text.replace("\n", " ") == "x<y && a>b </v> --> done"


def test_hours_in_every_format() -> None:
    words = [*said(0, 5.0, "Hello there."), *said(1, 3725.5, "Still here after an hour.")]
    doc = make_doc(words)
    txt = to_txt(doc)
    assert txt.splitlines()[0] == "[00:00:05] Alice Martin: Hello there."
    assert txt.splitlines()[1] == "[01:02:05] Bob Okafor: Still here after an hour."
    assert "01:02:05,500 --> " in to_srt(doc)
    assert parse_vtt(to_vtt(doc))[-1][0] == 3725.5
    md = to_markdown(doc)
    assert "**Duration:** 01:02:07" in md and "[01:02:05] **Bob Okafor:**" in md
    short = make_doc(said(0, 65.0, "Hi."))
    assert to_txt(short) == "[01:05] Alice Martin: Hi.\n"


def test_missing_participant_falls_back_to_one_based_speaker() -> None:
    words = [*said(0, 0.0, "Hi."), *said(2, 1.0, "Hello."), *said(1, 2.0, "Hey.")]
    doc = make_doc(words, names={0: "Alice Martin", 1: "   "})
    for text in (to_txt(doc), to_srt(doc), to_vtt(doc), to_markdown(doc)):
        assert "Alice Martin" in text and "Speaker 3" in text and "Speaker 2" in text
        assert "Speaker 1" not in text
    assert to_txt(doc).splitlines()[1] == "[00:01] Speaker 3: Hello."


def test_txt_turns_break_on_speaker_and_long_pause() -> None:
    lines = to_txt(make_doc(meeting())).splitlines()
    assert lines == [
        "[00:00] Alice Martin: Good morning everyone. Let's look at the roadmap for the third "
        "quarter.",
        "[00:06] Bob Okafor: Sure. I think the export feature should ship first because "
        "customers ask for subtitles and markdown notes every single week and it is cheap.",
        "[00:30] Alice Martin: Agreed.",
        "[00:35] Alice Martin: Then we schedule it.",
    ]


# --------------------------------------------------------------------------- markdown


def test_markdown_sections_and_content() -> None:
    doc = make_doc(
        meeting(),
        action_items=ActionItems(
            decisions=[Decision(decision="Ship exports first", decided_by="Bob Okafor")],
            next_steps=[
                NextStep(task="Write the SRT exporter", assigned_to="Alice Martin", deadline="Fri"),
                NextStep(task="Tell customers"),
            ],
        ),
        topics=[
            Topic(title="Roadmap", summary="Q3 plans.", start=0.5, duration=29, word_start=0,
                  word_end=10),
            Topic(title="Scheduling", summary="", start=65.2, duration=3, word_start=10,
                  word_end=14),
        ],
    )  # fmt: skip
    md = to_markdown(doc)
    heads = [line for line in md.splitlines() if line.startswith("#")]
    assert heads == [
        "# Roadmap sync",
        "## Summary",
        "### Quick recap",
        "### Summary",
        "## Action items",
        "### Decisions",
        "### Next steps",
        "## Topics",
        "## Transcript",
    ]
    assert "**Duration:** 00:36" in md and "**Participants:** Alice Martin, Bob Okafor" in md
    assert "The team agreed on the Q3 roadmap." in md and "**Roadmap** was discussed." in md
    assert "- Ship exports first — Bob Okafor" in md
    assert "- [ ] Write the SRT exporter (owner: **Alice Martin**, due: Fri)" in md
    assert "- [ ] Tell customers\n" in md
    assert "- **[00:00] Roadmap**\n  Q3 plans." in md and "- **[01:05] Scheduling**" in md
    assert "[00:30] **Alice Martin:** Agreed." in md
    assert md.index("## Topics") < md.index("## Transcript") < md.index("Then we schedule it.")


def test_markdown_escapes_transcript_text() -> None:
    doc = make_doc(said(0, 0.0, "use *stars* and <b>tags</b>"), names={0: "__init__"})
    md = to_markdown(doc)
    assert r"**\_\_init\_\_:** use \*stars\* and \<b\>tags\</b\>" in md


# --------------------------------------------------------------------------- empty


def test_empty_transcript_gives_valid_files() -> None:
    doc = make_doc([], title=None, short_summary="", long_summary="")
    assert cues(doc) == []
    assert to_vtt(doc) == "WEBVTT\n" and parse_vtt(to_vtt(doc)) == []
    assert to_srt(doc) == "" and parse_srt(to_srt(doc)) == []
    assert to_txt(doc) == ""
    md = to_markdown(doc)
    assert md.startswith("# Untitled meeting\n") and md.endswith("\n")
    for section in ("## Summary", "## Action items", "## Topics", "## Transcript"):
        assert section in md
    assert "**Participants:** Alice Martin, Bob Okafor" in md


# --------------------------------------------------------------------------- tsv and repeats


def test_tsv_is_whisper_tsv_with_a_speaker_column() -> None:
    words = [*said(0, 0.5, "Hello\tthere."), *said(1, 2.0, "Hi.")]
    rows = [r.split("\t") for r in to_tsv(make_doc(words)).splitlines()]
    assert rows[0] == ["start", "end", "speaker", "text"]
    # Integer milliseconds, like whisper's writer (round(1000 * t)); tabs in text become spaces.
    assert rows[1] == ["500", "1200", "Alice Martin", "Hello there."]
    assert rows[2] == ["2000", "2300", "Bob Okafor", "Hi."]
    assert to_tsv(make_doc([])) == "start\tend\tspeaker\ttext\n"


def test_markdown_prints_no_paragraph_or_sentence_twice() -> None:
    short = "Alice and Bob planned the roadmap. Bob will ship exports first."
    doc = make_doc(
        meeting(),
        short_summary=short,
        # The usual LLM shape: the recap repeats the short summary, a subject repeats a sentence.
        long_summary=f"# Quick recap\n\n{short}\n\n# Summary\n\n**Roadmap**\n\n"
        "Bob will ship exports first. Subtitles matter to customers.\n\n**Dates**\n\n"
        "Alice and Bob planned the roadmap.",
        topics=[
            Topic(title="Roadmap", summary="Bob will ship exports first.", start=0.5,
                  duration=29, word_start=0, word_end=10),
            Topic(title="Dates", summary="Subtitles matter to customers. It is cheap.",
                  start=30, duration=3, word_start=10, word_end=14),
        ],
    )  # fmt: skip
    md = to_markdown(doc)
    head = md.split("## Transcript")[0]
    assert head.count("Alice and Bob planned the roadmap.") == 1
    assert head.count("Bob will ship exports first.") == 1
    assert head.count("Subtitles matter to customers.") == 1
    assert "It is cheap." in head
    heads = [line for line in head.splitlines() if line.startswith("#") or line.startswith("**")]
    # Quick recap and the "Dates" subject had nothing new left to say: they are left out.
    assert heads == ["# Roadmap sync", "## Summary", "### Summary", "**Roadmap**",
                     "## Action items", "## Topics"]  # fmt: skip
    assert "- **[00:00] Roadmap**\n- **[00:30] Dates**\n  It is cheap." in head
