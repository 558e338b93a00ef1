"""transcribe_track with the real tiny.en model on real audio (fixture tracks, espeak-ng speech):
deterministic words, phantom phrases over silence, sparse long tracks, word probabilities.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from faster_whisper import WhisperModel, decode_audio

from reflector_cli.core.models import PadTrackIn, PadTrackOut, TrackRef, TranscribeIn, Word
from reflector_cli.core.textmetrics import normalize_words, word_error_rate
from reflector_cli.pipeline.execute import asr_options
from reflector_cli.stages.asr import load_model, read_words, transcribe_track, warm, warmed
from reflector_cli.stages.asr_audio import speech_regions
from reflector_cli.stages.asr_guard import is_phantom, phantom_text
from reflector_cli.stages.audio import pad_track
from reflector_cli.stages.context import StageContext
from reflector_cli.stages.levels import envelope, live_spans, to_bytes

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "fixtures" / "meeting"
sys.path.insert(0, str(ROOT / "scripts"))

import make_fixture  # noqa: E402  (scripts are importable only via sys.path)
import make_sparse  # noqa: E402

RATE = 48000


def _padded(ctx: StageContext, audio: np.ndarray, name: str = "t") -> PadTrackOut:
    """Store `audio` (48 kHz mono) as a padded track artifact, as pad_track would."""
    key = f"rec/padded/{name}.flac"
    with ctx.storage.writer(key, suffix=".flac") as tmp:
        sf.write(str(tmp), audio, RATE, format="FLAC", subtype="PCM_16")
    return PadTrackOut(track=0, key=key, duration_s=audio.size / RATE, sample_rate=RATE, offset_s=0)


def _transcribe(ctx: StageContext, padded: PadTrackOut, **asr: object) -> tuple[list[Word], dict]:
    opts = asr_options(ctx.settings).model_copy(update=asr)
    out = transcribe_track(TranscribeIn(recording_id="rec", asr=opts, padded=padded), ctx)
    return read_words(ctx, out.words_key), out.model_dump()


def _babble() -> np.ndarray:
    """The three fixture voices at once, and again 1.5 s later: six voices on one track, which
    whisper's decoding falls back on (three alone stopped doing so with CTranslate2 4.8)."""
    tracks = [decode_audio(str(p), sampling_rate=RATE) for p in sorted(FIXTURE.glob("*.*"))[:3]]
    n = min(t.size for t in tracks)
    three = sum(t[:n] for t in tracks)
    six = three + np.roll(three, round(1.5 * RATE))
    return (six / np.abs(six).max() * 0.9).astype(np.float32)


def _speech(text: str, before_s: float = 1.0, after_s: float = 1.0) -> np.ndarray:
    clip = make_fixture.synthesize(text, "en-us+m3", 160, 40)
    pad = np.zeros(round(before_s * RATE), np.float32), np.zeros(round(after_s * RATE), np.float32)
    return np.concatenate([pad[0], clip, pad[1]])


@pytest.mark.slow
def test_a_track_whose_decoding_falls_back_gives_the_same_words_twice(ctx: StageContext) -> None:
    babble = _babble()
    # faster-whisper's own default decoding (temperature fallback) samples on this track...
    padded = _padded(ctx, babble)
    model = WhisperModel(str(ctx.settings.model), compute_type="int8", cpu_threads=1)
    with ctx.storage.local_path(padded.key) as path:
        segments, _ = model.transcribe(str(path), language="en", beam_size=1, vad_filter=False)
        fell_back = sum(s.temperature > 0 for s in segments)
    # At least one: up to the first fallback everything is greedy, so that one is certain;
    # how many follow depends on what was sampled (1 to 22 seen on this track).
    assert fell_back >= 1, "the track no longer falls back"
    # ...ours never samples, so two runs agree word for word (times and probabilities too).
    first, _ = _transcribe(ctx, padded)
    second, _ = _transcribe(ctx, padded)
    assert first and first == second


def test_phantom_phrases_need_silence_under_them() -> None:
    assert phantom_text("Thank you.") and phantom_text(" Thanks for watching!")
    assert phantom_text("Subtitles by the Amara.org community")
    assert not phantom_text("Thank you for the report.")


@pytest.mark.slow
def test_a_spoken_thank_you_is_kept_and_the_same_words_over_silence_are_not(
    ctx: StageContext,
) -> None:
    spoken = _speech("Thank you.")
    words, out = _transcribe(ctx, _padded(ctx, spoken))
    assert "thank" in " ".join(w.text.lower() for w in words), words
    assert out["phantoms_dropped"] == 0
    assert all(w.probability is not None and 0 < w.probability <= 1 for w in words)
    # The same decoded words, placed over a silent track (a -70 dBFS noise floor): dropped.
    text = " ".join(w.text for w in words)
    quiet = (np.random.default_rng(0).standard_normal(spoken.size // 3) * 3e-4).astype(np.float32)
    assert is_phantom(text, words, quiet)
    assert not is_phantom(text, words, spoken[::3])  # the spoken track, 48 -> 16 kHz


def test_a_batch_size_above_one_decodes_through_the_batched_pipeline(
    ctx: StageContext, caplog: pytest.LogCaptureFixture
) -> None:
    said = ["The budget review starts on Monday morning.", "We ship the new dashboard in March."]
    padded = _padded(ctx, np.concatenate([_speech(said[0], after_s=4.0), _speech(said[1])]))
    ref = normalize_words(" ".join(said).split())
    caplog.set_level(logging.DEBUG, logger="faster_whisper")
    runs: dict[int, list[Word]] = {}
    logs: dict[int, str] = {}
    for batch in (1, 4):
        caplog.clear()
        runs[batch], _ = _transcribe(ctx, padded, batch_size=batch)
        logs[batch] = caplog.text
    # faster-whisper's own log lines tell its two decoders apart: the sequential one walks
    # 30 s windows, the batched pipeline reports its (here: no) VAD pass.
    assert "Processing segment at" in logs[1] and "VAD filter removed" not in logs[1]
    assert "VAD filter removed" in logs[4] and "Processing segment at" not in logs[4]
    for batch, words in runs.items():
        assert word_error_rate(ref, normalize_words([w.text for w in words])) <= 0.2, batch
        assert words[0].start < 3.0 < 6.0 < words[-1].start, batch  # meeting time kept
    assert _transcribe(ctx, padded, batch_size=4)[0] == runs[4]  # still deterministic


def test_a_silent_track_gives_no_words(ctx: StageContext) -> None:
    quiet = (np.random.default_rng(1).standard_normal(20 * RATE) * 1e-3).astype(np.float32)
    words, out = _transcribe(ctx, _padded(ctx, quiet))
    assert words == [] and out["word_count"] == 0


@pytest.mark.slow
def test_every_sentence_of_a_long_sparse_track_is_found_on_time(
    ctx: StageContext, tmp_path: Path
) -> None:
    """Sentences minutes apart on a mostly silent track (the sparse-meeting case, shortened)."""
    make_sparse.generate(tmp_path / "sparse", minutes=5, speakers=2, every_s=75)
    truth = json.loads((tmp_path / "sparse" / "meeting.truth.json").read_text())
    for sp in truth["speakers"]:
        src = tmp_path / "sparse" / "meeting" / sp["file"]
        key = f"rec/raw/{src.name}"
        ctx.storage.put_file(key, src)
        ref = TrackRef(index=sp["speaker"], key=key, source_name=src.name, participant_id="p")
        padded = pad_track(PadTrackIn(recording_id="rec", track=ref), ctx)
        words, _ = _transcribe(ctx, padded)
        for u in (u for u in truth["utterances"] if u["speaker"] == sp["speaker"]):
            near = [w for w in words if abs(w.start - u["start"]) <= 1.0]
            assert near, f"{sp['name']}: nothing within 1 s of {u['start']} s ({u['text']})"


def test_a_warm_up_with_other_options_drops_the_model_guessed_before(ctx: StageContext) -> None:
    guessed = asr_options(ctx.settings)
    warm(guessed)
    real = guessed.model_copy(update={"compute_type": "float32"})
    warm(real)
    assert warmed() == (real.model, "float32", 1, "cpu")
    assert load_model.cache_info().currsize == 1  # the guessed int8 model is not kept resident
    warm(real)
    assert load_model.cache_info().currsize == 1


def test_two_tracks_on_two_threads_of_one_process_decode_side_by_side(ctx: StageContext) -> None:
    """A process that runs two stages at once (a Hatchet worker's slots) loads a model replica
    per slot: the decodes run at the same time instead of queueing for one, with the words
    each track gets alone."""
    said = ["The budget review starts on Monday morning, right after the standup meeting."] * 2
    pads = [
        _padded(ctx, _speech(text), name=f"t{i}").model_copy(update={"track": i})
        for i, text in enumerate(said)
    ]
    alone = [_transcribe(ctx, p)[0] for p in pads]
    opts = asr_options(ctx.settings)
    warm(opts, parallel=2)
    model = load_model(opts.model, opts.compute_type, opts.cpu_threads, opts.device, 2).model
    both, done = [0], threading.Event()

    def watch() -> None:
        # Polls where two decodes were running (the two counters are read apart: a hand-over
        # between the reads can fake one such poll, never dozens).
        while not done.is_set():
            both[0] += model.num_active_batches - model.num_queued_batches >= 2
            time.sleep(0.001)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with ThreadPoolExecutor(2) as pool:
            together = list(pool.map(lambda p: _transcribe(ctx, p)[0], pads))
    finally:
        done.set()
        watcher.join()
        warm(opts)
    assert both[0] >= 20, f"the two decodes ran at the same time in {both[0]} polls"
    assert model.num_workers == 2
    assert together == alone and alone[0]


@pytest.mark.slow
def test_the_vad_skips_what_the_levels_show_quiet_and_finds_the_same_speech(
    ctx: StageContext,
) -> None:
    said = ["The budget review starts on Monday morning.", "We ship the new dashboard in March."]
    rng = np.random.default_rng(3)

    def floor(seconds: float) -> np.ndarray:  # a -70 dBFS room between the turns
        return (rng.standard_normal(round(seconds * RATE)) * 3e-4).astype(np.float32)

    audio = np.concatenate(
        [np.zeros(20 * RATE, np.float32), _speech(said[0]), floor(25), _speech(said[1]), floor(3)]
    )
    padded = _padded(ctx, audio)
    with ctx.storage.local_path(padded.key) as path:
        env = envelope(path)
        spans = live_spans(env)
        whole, gated = speech_regions(path), speech_regions(path, spans=spans)
    assert sum(b - a for a, b in spans) < 0.5 * padded.duration_s  # most of the track skipped
    assert len(gated) == len(whole) == 2
    assert np.allclose(gated, whole, atol=0.15), (gated, whole)

    key = "rec/padded/t.levels.f32"
    ctx.storage.write_bytes(key, to_bytes(env))
    words, _ = _transcribe(ctx, padded.model_copy(update={"levels_key": key}))
    ref = normalize_words(" ".join(said).split())
    assert word_error_rate(ref, normalize_words([w.text for w in words])) <= 0.2, words
    assert 20.0 < words[0].start < 24.0 and 45.0 < words[-1].start < 52.0
