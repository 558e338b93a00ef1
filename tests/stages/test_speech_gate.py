"""The leak gate before transcription, on real speech (espeak-ng) through real FLAC envelopes:
a microphone's stretches of other talkers' leak are skipped; own speech (alone, at once with
someone else, or 20 dB quieter than the leak's source) never is; and transcribe_track with
the real model decodes the speaker's own words without the leaked sentence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from reflector_cli.core.models import PadTrackOut, TranscribeIn
from reflector_cli.core.textmetrics import word_error_rate
from reflector_cli.pipeline.execute import asr_options
from reflector_cli.stages.asr import read_words, transcribe_track
from reflector_cli.stages.context import StageContext
from reflector_cli.stages.levels import Levels, envelope, leak_gains, to_bytes
from reflector_cli.stages.speech_gate import GUARD_S, leak_skips, without
from tests.stages.crosstalk_audio import A_TEXT, B_TEXT, RATE, Meeting, speech

LONG_A = f"{A_TEXT} and {A_TEXT}"


def _levels(m: Meeting, tmp_path: Path, leak_db: float = -20.0) -> Levels:
    envs = []
    for i, mic in enumerate(m.mics(leak_db)):
        sf.write(tmp_path / f"{i}.flac", mic, RATE, subtype="PCM_16")
        envs.append(envelope(tmp_path / f"{i}.flac"))
    return Levels.from_envelopes(envs)


def _said(m: Meeting, who: int) -> tuple[float, float]:
    """First and last second of `who`'s own voice."""
    loud = np.flatnonzero(np.abs(m.own[who]) > 1e-3)
    return loud[0] / RATE, loud[-1] / RATE


def _overlaps(spans: list[tuple[float, float]], a: float, b: float) -> bool:
    return any(s < b and e > a for s, e in spans)


def _covered(spans: list[tuple[float, float]], a: float, b: float) -> float:
    return sum(max(0.0, min(e, b) - max(s, a)) for s, e in spans)


def _turns() -> Meeting:
    """A talks for ~8 s, then B answers: B's mic carries A's leak first."""
    m = Meeting(14.0)
    a, b = m.talker(), m.talker()
    m.say(a, 0.5, LONG_A)
    m.say(b, 10.0, B_TEXT, voice="en-us+f3")
    return m


def test_the_leak_on_a_mic_is_skipped_and_its_own_turn_is_not(tmp_path: Path) -> None:
    m = _turns()
    levels = _levels(m, tmp_path)
    a0, a1 = _said(m, 0)
    b0, b1 = _said(m, 1)
    skips = leak_skips(levels, 1)
    # Most of A's turn is skipped on B's mic, up to GUARD_S before B's own voice.
    assert _covered(skips, a0, a1) > 0.8 * (a1 - a0), skips
    assert not _overlaps(skips, b0 - GUARD_S + 0.05, b1 + GUARD_S - 0.05), skips
    # A's own mic: nothing of A's turn goes (B's leak later may).
    assert not _overlaps(leak_skips(levels, 0), a0, a1)


def test_two_people_talking_at_once_both_keep_their_speech(tmp_path: Path) -> None:
    m = Meeting(9.0)
    a, b = m.talker(), m.talker()
    m.say(a, 0.5, LONG_A)
    m.say(b, 2.0, B_TEXT, voice="en-us+f3")  # over A's speech, for seconds
    levels = _levels(m, tmp_path)
    for who in (a, b):
        start, end = _said(m, who)
        assert not _overlaps(leak_skips(levels, who), start, end), who


def test_a_quiet_speaker_is_kept_while_the_loud_leak_on_their_mic_goes(tmp_path: Path) -> None:
    """B is 20 dB quieter than A: B's voice is no louder than A's leak on B's mic."""
    m = Meeting(15.0)
    a, b = m.talker(), m.talker()
    m.say(a, 0.5, LONG_A)
    m.say(b, 10.0, B_TEXT, voice="en-us+f3", gain_db=-20.0)
    levels = _levels(m, tmp_path)
    a0, a1 = _said(m, 0)
    b0, b1 = _said(m, 1)
    skips = leak_skips(levels, 1)
    assert _covered(skips, a0, a1) > 0.5 * (a1 - a0), skips
    assert not _overlaps(skips, b0, b1), skips


def test_a_short_reply_over_someone_elses_turn_splits_the_skip(tmp_path: Path) -> None:
    """B's "yes" 10 dB under A's voice, in the middle of A's turn, stays for the VAD. (At the
    leak's own level it could not be told from the leak: merge would drop it as well.)"""
    m = Meeting(16.0)
    a, b = m.talker(), m.talker()
    m.say(a, 0.5, LONG_A)
    m.say(b, 4.0, "yes", voice="en-us+f3", gain_db=-10.0)
    m.say(b, 10.5, B_TEXT, voice="en-us+f3")
    skips = leak_skips(_levels(m, tmp_path), 1)
    said = 4.0, 4.0 + speech("yes").size / RATE
    assert not _overlaps(skips, *said), skips
    assert _covered(skips, 0.5, 10.0) > 5.0, skips  # the rest of A's turn still goes


def test_nothing_is_skipped_without_leak_or_other_tracks(tmp_path: Path) -> None:
    m = _turns()
    clean = _levels(m, tmp_path, leak_db=-200.0)  # only the mics' own noise
    assert leak_skips(clean, 0) == [] and leak_skips(clean, 1) == []
    alone = Levels.from_envelopes([_levels(m, tmp_path).power[1]])
    assert leak_skips(alone, 0) == []


def test_a_mic_that_only_ever_hears_someone_else_is_skipped(tmp_path: Path) -> None:
    # B never talks, so B is never the source: the leak gain into A's mic is unknown, and A's
    # level counts as A's own (as merge judges it). B's mic is A's leak throughout.
    m = Meeting(12.0)
    a, _ = m.talker(), m.talker()
    m.say(a, 0.5, LONG_A)
    levels = _levels(m, tmp_path)
    gains = leak_gains(levels)
    assert np.isnan(gains[0, 1]) and np.isfinite(gains[1, 0])
    a0, a1 = _said(m, 0)
    assert _covered(leak_skips(levels, 1), a0, a1) > 0.8 * (a1 - a0), leak_skips(levels, 1)
    assert leak_skips(levels, 0) == []  # no leak into A's mic is known: never skipped


def test_without_cuts_skips_out_of_spans() -> None:
    spans = [(0.0, 10.0), (20.0, 30.0)]
    assert without(spans, []) == spans
    assert without(spans, [(2.0, 4.0), (8.0, 22.0), (29.0, 40.0)]) == [
        (0.0, 2.0),
        (4.0, 8.0),
        (22.0, 29.0),
    ]


def _store(ctx: StageContext, m: Meeting, tmp_path: Path) -> list[PadTrackOut]:
    """Each mic as a padded track with its level envelope, as pad_track stores them."""
    out = []
    for i, mic in enumerate(m.mics()):
        key, levels_key = f"rec/padded/track-{i}.flac", f"rec/padded/track-{i}.levels.f32"
        with ctx.storage.writer(key, suffix=".flac") as path:
            sf.write(path, mic, RATE, format="FLAC", subtype="PCM_16")
            ctx.storage.write_bytes(levels_key, to_bytes(envelope(path)))
        out.append(
            PadTrackOut(
                track=i,
                key=key,
                duration_s=m.n / RATE,
                sample_rate=RATE,
                offset_s=0.0,
                levels_key=levels_key,
            )
        )
    return out


def test_transcription_of_a_mic_skips_the_leaked_turn(ctx: StageContext, tmp_path: Path) -> None:
    m = _turns()
    padded = _store(ctx, m, tmp_path)
    asr = asr_options(ctx.settings)
    a0, a1 = _said(m, 0)

    def words(tracks: list[PadTrackOut]) -> tuple[list[str], list[str], float]:
        out = transcribe_track(
            TranscribeIn(recording_id="rec", asr=asr, padded=padded[1], tracks=tracks), ctx
        )
        got = read_words(ctx, out.words_key)
        leaked = [w.text for w in got if a0 + 0.5 < (w.start + w.end) / 2 < a1 - 0.5]
        return [w.text for w in got], leaked, out.speech_s

    # Without the other track's envelope the VAD finds A's leak and whisper transcribes it...
    _, leaked, speech_all = words([])
    assert len(leaked) >= 5, leaked
    # ...with it, that stretch is never decoded, and B's own sentence comes out whole.
    own, leaked, speech_gated = words(padded)
    assert leaked == []
    assert word_error_rate(B_TEXT.split(), own) < 0.3, own
    assert speech_gated < speech_all - 0.5 * (a1 - a0)
    assert speech(B_TEXT).size / RATE < speech_gated + 1.0
    # A lost envelope is computed again from its padded file: the same words, still gated.
    ctx.storage.delete(padded[0].levels_key)
    assert words(padded) == (own, leaked, speech_gated)
