"""Level envelopes streamed from real FLAC files, and leak gains measured from a meeting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from reflector_cli.stages.levels import (
    FRAME_S,
    QUIET_LEAD_S,
    QUIET_MIN_S,
    QUIET_TAIL_S,
    Levels,
    envelope,
    excess_db,
    leak_gains,
    live_spans,
    pcm16,
)
from tests.stages.crosstalk_audio import RATE, Meeting


def test_streamed_envelope_equals_the_whole_file_computation(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    rate = 48000
    audio = (rng.standard_normal(rate * 7 + 123) * 0.1).astype(np.float32)  # not whole frames
    sf.write(tmp_path / "a.flac", audio, rate, subtype="PCM_16")
    env = envelope(tmp_path / "a.flac")
    pcm = sf.read(tmp_path / "a.flac", dtype="float32")[0].astype(np.float64)
    hop = round(rate * FRAME_S)
    whole = len(pcm) // hop * hop
    expect = (pcm[:whole] ** 2).reshape(-1, hop).mean(axis=1)
    assert len(env) == len(expect) + 1  # the partial last frame counts too
    np.testing.assert_allclose(env[:-1], expect, rtol=1e-4)


def test_leak_gain_is_measured_from_the_meeting(tmp_path: Path) -> None:
    m = Meeting(9.0)
    a, b = m.talker(), m.talker()
    m.say(a, 0.5, "the quarterly numbers look strong and the launch is on schedule")
    m.say(b, 5.0, "we should hire two more engineers before summer", voice="en-us+f3")
    envs = []
    for i, mic in enumerate(m.mics(leak_db=-24.0)):
        sf.write(tmp_path / f"{i}.flac", mic, RATE, subtype="PCM_16")
        envs.append(envelope(tmp_path / f"{i}.flac"))
    gains = leak_gains(Levels.from_envelopes(envs))
    assert np.isnan(gains[0, 0]) and np.isnan(gains[1, 1])
    # Within a few dB of the -24 dB mixed in (room reverb and the quartile shift it a little).
    assert -29 < gains[0, 1] < -20 and -29 < gains[1, 0] < -20


def test_a_track_that_is_never_the_source_gives_no_gain() -> None:
    bursts = np.tile(np.r_[np.full(50, 1e-2), np.full(50, 1e-8)], 10).astype(np.float32)
    leak_only = (bursts * 10 ** (-30 / 10) + 1e-9).astype(np.float32)
    gains = leak_gains(Levels.from_envelopes([bursts, leak_only]))
    assert -31 < gains[1, 0] < -29
    assert np.isnan(gains[0, 1])  # track 1 is never the one talking: no evidence about it


def _env(*parts: tuple[float, float]) -> np.ndarray:
    """An envelope of (seconds, dBFS) stretches; None-like -inf dB is digital silence."""
    frames = [np.full(round(sec / FRAME_S), 10 ** (dbfs / 10)) for sec, dbfs in parts]
    return np.concatenate(frames).astype(np.float32)


def test_live_spans_skip_padding_and_long_quiet_but_keep_the_vads_margins() -> None:
    floor, speech = -70.0, -25.0
    env = _env((30, -200), (5, speech), (1.5, floor), (5, speech), (60, floor), (5, speech))
    spans = live_spans(env)
    # The padding goes whole; a pause shorter than QUIET_MIN_S stays; the long floor keeps
    # QUIET_TAIL_S after the speech before it and QUIET_LEAD_S before the speech after it.
    first_end, second = 30 + 5 + 1.5 + 5, 30 + 5 + 1.5 + 5 + 60
    expect = [(30 - QUIET_LEAD_S, first_end + QUIET_TAIL_S), (second - QUIET_LEAD_S, second + 5)]
    assert np.allclose(spans, expect, atol=FRAME_S)
    assert QUIET_MIN_S > QUIET_TAIL_S + QUIET_LEAD_S


def test_live_spans_never_gate_a_loud_floor_or_a_track_with_no_long_quiet() -> None:
    loud_room = _env((20, -45), (5, -20), (20, -45))  # a fan at -45 dBFS: the VAD must judge
    assert live_spans(loud_room) == [(0.0, 45.0)]
    chatty = _env(*[(3, -25), (1, -70)] * 10)
    assert live_spans(chatty) == [(0.0, 40.0)]
    assert live_spans(np.zeros(0, dtype=np.float32)) == []
    assert live_spans(_env((10, -200))) == []  # all padding: nothing to look at


def test_pcm16_is_what_libsndfile_stores_and_clips_instead_of_wrapping(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    # Full scale and beyond (lossy decoders overshoot), halves that round to even, noise.
    edges = np.array([1.0, -1.0, 1.2, -1.3, 0.5 / 32768, 1.5 / 32768, -2.5 / 32768], np.float32)
    mono = np.concatenate([edges, rng.uniform(-1, 1, 48000).astype(np.float32)])
    pcm = pcm16(mono)
    assert pcm.dtype == np.int16
    assert pcm[:7].tolist() == [32767, -32768, 32767, -32768, 0, 2, -2]
    files = {}
    for name, data in (("floats", np.clip(mono, -1.0, 1.0)), ("pcm16", pcm)):
        path = tmp_path / f"{name}.flac"
        sf.write(path, data, 48000, format="FLAC", subtype="PCM_16")
        files[name] = path.read_bytes()
    assert files["floats"] == files["pcm16"]


def test_excess_is_the_level_the_leak_model_cannot_explain() -> None:
    # Track 0 talks at -20 dB; its leak reaches track 1 at -20 dB (gain -20); track 2's gain
    # into track 1 is unknown, so it predicts nothing; every floor is -80 dB.
    gains = np.array([[np.nan, -20.0, -20.0], [-20.0, np.nan, np.nan], [-20.0, -20.0, np.nan]])
    floors = np.full(3, -80.0)
    span = np.array([-20.0, -40.0, -30.0])  # track 2 says something of its own at -30 dB
    ex = excess_db(span, gains, floors)
    assert abs(ex[1]) < 0.1  # exactly the leak track 0 predicts: no energy of its own
    assert 9.0 < ex[2] < 10.0  # 10 dB over the -40 dB of leak from track 0 (and 1)
    assert ex[0] > 9.0  # far above what tracks 1 and 2 could leak into it
    # Per frame: the same numbers for every frame of a (tracks, frames) array.
    frames = np.repeat(span[:, None], 4, axis=1)
    np.testing.assert_allclose(excess_db(frames, gains, floors), np.repeat(ex[:, None], 4, 1))
    # Two leaks add in power: with both sources at -20 dB into track 2, 3 dB more is predicted.
    both = excess_db(np.array([-20.0, -20.0, -37.0]), gains, floors)
    assert abs(both[2]) < 0.1
