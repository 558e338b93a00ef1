"""Crosstalk suppression in merge_transcripts, on real speech (espeak-ng) written as real FLAC
padded tracks: leaks removed, genuine overlap, backchannels and quiet speakers kept, off = all.

Word lists are laid on the speech's true times (as the recogniser would report them) so each
case tests the decision on real audio levels; tests/cli/test_crosstalk_cli.py runs whisper.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf
from pydantic import TypeAdapter

from reflector_cli.core.config import load_settings
from reflector_cli.core.models import (
    CrosstalkDoc,
    MergeIn,
    MergeOut,
    PadTrackOut,
    TranscribeOut,
    TranscriptDoc,
    Word,
)
from reflector_cli.stages.context import StageContext
from reflector_cli.stages.crosstalk import duplicated
from reflector_cli.stages.transcript import merge_transcripts
from reflector_cli.storage import LocalStorage
from tests.stages.crosstalk_audio import A_TEXT, B_TEXT, RATE, Meeting, speech


def merge(m: Meeting, tmp_path: Path, crosstalk: bool = True) -> tuple[MergeOut, StageContext]:
    storage = LocalStorage(tmp_path)
    ctx = StageContext(storage=storage, settings=load_settings(data_dir=tmp_path))
    padded, tracks = [], []
    for i, mic in enumerate(m.mics()):
        key = f"rec/padded/track-{i}.flac"
        with storage.writer(key, suffix=".flac") as path:
            sf.write(path, mic, RATE, format="FLAC", subtype="PCM_16")
        padded.append(
            PadTrackOut(track=i, key=key, duration_s=m.n / RATE, sample_rate=RATE, offset_s=0.0)
        )
        wkey = f"rec/words/track-{i}.json"
        storage.write_bytes(wkey, TypeAdapter(list[Word]).dump_json(m.words[i]))
        tracks.append(TranscribeOut(track=i, words_key=wkey, word_count=len(m.words[i])))
    inp = MergeIn(recording_id="rec", tracks=tracks, padded=padded, crosstalk=crosstalk)
    return merge_transcripts(inp, ctx), ctx


def kept(out: MergeOut, ctx: StageContext) -> dict[int, str]:
    doc = TranscriptDoc.model_validate_json(ctx.storage.read_bytes(out.transcript_key))
    return {s: " ".join(w.text for w in doc.words if w.speaker == s) for s in range(3)}


@pytest.fixture(scope="module")
def leak_meeting() -> Meeting:
    """A talks, B's mic picks A up and the recogniser transcribes that leak on B's track."""
    m = Meeting(8.0)
    a, b = m.talker(), m.talker()
    m.say(a, 1.0, A_TEXT)
    m.heard(b, 1.1, len(speech(A_TEXT)) / RATE, A_TEXT)  # same words, same time
    m.say(b, 5.5, "right", voice="en-us+f3")
    return m


def test_quiet_leak_of_a_loud_own_voice_is_removed(leak_meeting: Meeting, tmp_path: Path) -> None:
    out, ctx = merge(leak_meeting, tmp_path)
    text = kept(out, ctx)
    assert text[0] == A_TEXT
    assert text[1] == "right"  # B's own word survives, the leaked sentence does not
    assert out.crosstalk and out.crosstalk_removed == [0, len(A_TEXT.split())]
    removed = CrosstalkDoc.model_validate_json(ctx.storage.read_bytes(out.crosstalk_key or ""))
    assert {w.speaker for w in removed.removed} == {1}
    assert {w.source for w in removed.removed} == {0}
    assert all(w.excess_db < 6 for w in removed.removed)


def test_crosstalk_off_keeps_every_word(leak_meeting: Meeting, tmp_path: Path) -> None:
    out, ctx = merge(leak_meeting, tmp_path, crosstalk=False)
    assert kept(out, ctx)[1] == f"{A_TEXT} right"
    assert not out.crosstalk and out.crosstalk_removed == [] and out.crosstalk_key is None
    assert out.transcript_key != "rec/transcript.json"  # the "on" artifact is left alone


def test_leak_transcribed_differently_is_removed_by_level_alone(tmp_path: Path) -> None:
    m = Meeting(6.0)
    a, b = m.talker(), m.talker()
    m.say(a, 1.0, A_TEXT)
    m.heard(b, 1.0, 3.0, "a quarter of numbers looks wrong")  # nothing matches A's words
    out, ctx = merge(m, tmp_path)
    assert kept(out, ctx)[1] == ""
    assert out.crosstalk_removed == [0, 6]


def test_genuine_overlap_keeps_both_talkers(tmp_path: Path) -> None:
    m = Meeting(7.0)
    a, b = m.talker(), m.talker()
    m.say(a, 1.0, A_TEXT)
    m.say(b, 1.5, B_TEXT, voice="en-us+f3")  # both at once, for seconds
    out, ctx = merge(m, tmp_path)
    assert kept(out, ctx) == {0: A_TEXT, 1: B_TEXT, 2: ""}
    assert out.crosstalk_removed == [0, 0]


def test_backchannel_on_one_track_survives(tmp_path: Path) -> None:
    m = Meeting(8.0)
    a, b, c = m.talker(), m.talker(), m.talker()
    m.say(a, 0.5, A_TEXT)
    m.say(b, 2.0, "yeah", voice="en-us+f3")  # over A's speech
    m.say(c, 6.5, "mm-hmm", voice="en-us+m3")  # alone, in silence
    out, ctx = merge(m, tmp_path)
    assert kept(out, ctx) == {0: A_TEXT, 1: "yeah", 2: "mm-hmm"}


def test_quiet_speaker_is_kept_while_the_leak_on_their_mic_goes(tmp_path: Path) -> None:
    """B is 20 dB quieter than A: B's own voice is no louder than A's leak on B's mic, so no
    absolute level could separate them; the relative comparison does."""
    m = Meeting(9.0)
    a, b = m.talker(), m.talker()
    m.say(a, 0.5, A_TEXT)
    m.heard(b, 0.6, len(speech(A_TEXT)) / RATE, A_TEXT)
    m.say(b, 5.0, B_TEXT, voice="en-us+f3", gain_db=-20.0)
    out, ctx = merge(m, tmp_path)
    assert kept(out, ctx) == {0: A_TEXT, 1: B_TEXT, 2: ""}
    assert out.crosstalk_removed == [0, len(A_TEXT.split())]


def test_without_padded_tracks_nothing_is_judged(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    ctx = StageContext(storage=storage, settings=load_settings(data_dir=tmp_path))
    words = TypeAdapter(list[Word])
    for i in range(2):
        storage.write_bytes(
            f"rec/words/track-{i}.json",
            words.dump_json(
                [
                    Word(text="same", start=1.0, end=1.3, speaker=i),
                    Word(text="words", start=1.4, end=1.7, speaker=i),
                ]
            ),
        )
    tracks = [
        TranscribeOut(track=i, words_key=f"rec/words/track-{i}.json", word_count=2)
        for i in range(2)
    ]
    out = merge_transcripts(MergeIn(recording_id="rec", tracks=tracks, crosstalk=True), ctx)
    assert out.word_count == 4 and not out.crosstalk


def test_duplicates_are_phrases_heard_twice_not_common_words() -> None:
    def words(text: str, at: float, speaker: int) -> list[Word]:
        return [
            Word(text=t, start=at + k * 0.3, end=at + k * 0.3 + 0.25, speaker=speaker)
            for k, t in enumerate(text.split())
        ]

    leak = words("the launch is on schedule", 1.1, 1)
    source = words("so the launch is on schedule.", 0.8, 0)
    assert duplicated(leak, source) == [True] * 5
    # Same common words nearby, but never next to each other on the other track.
    other = words("and the plan for this is that it goes on", 0.9, 0)
    assert duplicated(words("the thing is on", 1.0, 1), other) == [False] * 4
    assert duplicated(leak, words("the launch is on schedule", 5.0, 0)) == [False] * 5  # later
