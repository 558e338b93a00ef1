"""merge_transcripts on hand-written word lists: ordering, ties, segments, artifact."""

from __future__ import annotations

from pathlib import Path

from pydantic import TypeAdapter

from reflector_cli.core.config import load_settings
from reflector_cli.core.models import MergeIn, TranscribeOut, TranscriptDoc, Word
from reflector_cli.stages.context import StageContext
from reflector_cli.stages.transcript import build_segments, merge_transcripts, merge_words
from reflector_cli.storage import LocalStorage


def w(text: str, start: float, speaker: int) -> Word:
    return Word(text=text, start=start, end=start + 0.3, speaker=speaker)


def test_merge_is_stable_sort_with_track_order_on_ties() -> None:
    a = [w("hello", 1.0, 0), w("there.", 2.0, 0)]
    b = [w("hi", 1.0, 1), w("yes", 1.5, 1)]
    merged = merge_words([a, b])
    assert [(x.text, x.speaker) for x in merged] == [
        ("hello", 0),
        ("hi", 1),
        ("yes", 1),
        ("there.", 0),
    ]


def test_segments_break_on_speaker_change_and_long_sentences() -> None:
    long = [w(f"word{i}", i * 0.4, 0) for i in range(30)] + [w("end.", 12.0, 0)]
    words = [*long, w("next", 13.0, 0), w("other", 14.0, 1)]
    segs = build_segments(words)
    assert [s.speaker for s in segs] == [0, 0, 1]
    assert segs[0].text.endswith("end.")
    assert segs[1].text == "next"
    assert segs[0].start == 0.0 and segs[2].end == 14.3


def test_merge_stage_writes_transcript_artifact(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    ctx = StageContext(storage=storage, settings=load_settings(data_dir=tmp_path))
    lists = TypeAdapter(list[Word])
    storage.write_bytes("rec/words/track-0.json", lists.dump_json([w("a", 0.5, 0)]))
    storage.write_bytes("rec/words/track-1.json", lists.dump_json([w("b", 0.2, 1)]))
    tracks = [
        TranscribeOut(track=1, words_key="rec/words/track-1.json", word_count=1),
        TranscribeOut(track=0, words_key="rec/words/track-0.json", word_count=1),
    ]
    out = merge_transcripts(MergeIn(recording_id="rec", tracks=tracks), ctx)
    doc = TranscriptDoc.model_validate_json(storage.read_bytes(out.transcript_key))
    assert [x.text for x in doc.words] == ["b", "a"]
    assert out.word_count == 2 and out.speakers == [0, 1]
    assert out.duration_s == 0.8


def test_merge_of_silent_tracks_is_empty_not_an_error(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    ctx = StageContext(storage=storage, settings=load_settings(data_dir=tmp_path))
    storage.write_bytes("rec/words/track-0.json", b"[]")
    out = merge_transcripts(
        MergeIn(
            recording_id="rec",
            tracks=[TranscribeOut(track=0, words_key="rec/words/track-0.json", word_count=0)],
        ),
        ctx,
    )
    assert out.word_count == 0 and out.duration_s == 0.0
