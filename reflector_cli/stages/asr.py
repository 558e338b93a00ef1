"""transcribe_track: faster-whisper on one padded track; every word carries the track's speaker.

The track is read in bounded windows; the VAD looks only where the track's level envelope is not
long quiet (levels.live_spans); its speech regions are decoded in groups, and a region a group
decode left empty is decoded alone (see asr_audio); with a batch size above 1, chunks of at
most 30 s are decoded in batches instead. Decoding is deterministic: greedy or beam search at
temperature 0 only. The model is loaded once per process and cached.
"""

from __future__ import annotations

import bisect
import os
import threading
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from reflector_cli.core.models import AsrOptions, TranscribeIn, TranscribeOut, Word
from reflector_cli.core.whisper_models import resolve_model
from reflector_cli.stages import heap
from reflector_cli.stages.asr_audio import (
    MAX_REGION_S,
    RATE,
    Span,
    concat,
    groups,
    read_span,
    speech_regions,
)
from reflector_cli.stages.asr_guard import is_phantom
from reflector_cli.stages.context import StageContext
from reflector_cli.stages.levels import Levels, live_spans, track_envelope
from reflector_cli.stages.speech_gate import leak_skips, without

_load_lock = threading.Lock()

# No temperature fallback: it samples, and CTranslate2's sampler is seeded once per thread
# (`set_random_seed` cannot reseed a live worker), so fallback output differs run to run.
# faster-whisper's guards stay on: no-speech + log-prob skip silent windows, and
# hallucination_silence_threshold skips silence around a suspect segment.
# (A tuple, not a dict, so the stage's code version hashes the values.)
DECODE: tuple[tuple[str, Any], ...] = (
    ("temperature", 0.0),
    ("no_speech_threshold", 0.6),
    ("log_prob_threshold", -1.0),
    ("compression_ratio_threshold", 2.4),
    ("hallucination_silence_threshold", 2.0),
    ("condition_on_previous_text", False),
    ("word_timestamps", True),
    ("vad_filter", False),
)
# Seconds of speech the language of an `auto` track is detected on.
DETECT_S = 30.0
# Compute types CTranslate2 quantizes a float model to int8 for at each load on the CPU; for
# these a worker loads the stored int8 copy instead (asr_weights).
INT8_ON_LOAD = ("int8", "int8_float32")
# Whisper's window: the longest chunk a batched decode takes (it would cut a longer one).
CHUNK_S = 30.0


def _model_ref(asr: AsrOptions) -> str:
    """The local model directory (run inputs carry a resolved path; see whisper_models)."""
    return str(resolve_model(asr.model))


@lru_cache(maxsize=2)
def load_model(
    model: str, compute_type: str, cpu_threads: int, device: str = "cpu", replicas: int = 1
) -> Any:
    """The model, with `replicas` copies of its state that decode at once (weights shared):
    with one, concurrent decodes from several threads wait for each other."""
    # Never reach for the hub: a name must already be cached locally.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from reflector_cli.stages.asr_encoder import HalfWindowWhisper
    from reflector_cli.stages.asr_features import BoundedFeatures
    from reflector_cli.stages.asr_weights import int8_copy

    def whisper_from(path: str) -> HalfWindowWhisper:
        with _load_lock:
            return HalfWindowWhisper(
                path,
                device=device,
                compute_type=compute_type,
                cpu_threads=cpu_threads,
                num_workers=replicas,
                local_files_only=True,
            )

    copy = None
    if device == "cpu" and compute_type in INT8_ON_LOAD and Path(model).is_dir():
        copy = int8_copy(Path(model))
    try:
        whisper = whisper_from(str(copy or model))
    except Exception:
        if copy is None:
            raise
        # A copy removed or damaged under us (its source was reinstalled meanwhile, a disk
        # error): the original still loads, only slower.
        whisper = whisper_from(model)
    # Same features, without a whole decode's spectrum in memory at once.
    whisper.feature_extractor = BoundedFeatures.like(whisper.feature_extractor)
    return whisper


_warmed: tuple[str, str, int, str] | None = None
# Tracks this process may transcribe at once (a Hatchet worker's slots; see warm).
_replicas = 1


def warm(asr: AsrOptions, parallel: int = 1) -> None:
    """Load the model this process will transcribe with, ahead of the first track; a model an
    earlier warm-up guessed (an early worker, before the run's options were known) and this
    one does not use is dropped rather than kept resident. `parallel`: how many stages this
    process runs at once on its own threads; the model gets a replica for each."""
    global _warmed, _replicas
    key = (_model_ref(asr), asr.compute_type, asr.cpu_threads, asr.device)
    replicas = max(1, parallel)
    if _warmed is not None and (_warmed, _replicas) != (key, replicas):
        load_model.cache_clear()
    _warmed, _replicas = key, replicas
    load_model(*key, replicas)


def warmed() -> tuple[str, str, int, str] | None:
    """What the last warm-up loaded (model, compute type, threads, device), if any."""
    return _warmed


def _regions(path: Path, inp: TranscribeIn, ctx: StageContext) -> tuple[list[Span], float]:
    """Speech regions (VAD, only inside the live spans), or with the VAD off the whole track in
    pieces; and the speech length. Batched decoding takes chunks of at most CHUNK_S, so the VAD
    splits regions that long."""
    asr, duration = inp.asr, inp.padded.duration_s
    limit = CHUNK_S if asr.batch_size > 1 else MAX_REGION_S
    if asr.vad:
        regions = speech_regions(path, limit, _live_spans(inp, ctx))
        return [Span(a, b) for a, b in regions], sum(b - a for a, b in regions)
    steps = np.arange(0.0, max(duration, 0.0), limit)
    return [Span(a, min(a + limit, duration)) for a in steps], duration


def _live_spans(inp: TranscribeIn, ctx: StageContext) -> list[tuple[float, float]]:
    """Where the VAD should look, from the tracks' level envelopes: not in long quiet stretches,
    nor where the track carries only other talkers' leak. A lost envelope is computed again
    from its padded file (levels.track_envelope), so neither cut turns itself off under the
    same checkpoint."""
    env = track_envelope(inp.padded, ctx)
    spans = live_spans(env)
    if len(inp.tracks) < 2:
        return spans
    envs = [env if t.track == inp.padded.track else track_envelope(t, ctx) for t in inp.tracks]
    row = [t.track for t in inp.tracks].index(inp.padded.track)
    return without(spans, leak_skips(Levels.from_envelopes(envs), row))


def _detect(model: Any, path: Path, found: list[Span]) -> tuple[str | None, float | None]:
    """Language and probability from the track's first DETECT_S seconds of speech."""
    if not model.model.is_multilingual:
        return "en", 1.0
    parts: list[np.ndarray] = []
    have = 0.0
    for s in found:
        if have >= DETECT_S:
            break
        parts.append(read_span(path, s.start, min(s.end, s.start + DETECT_S - have)))
        have += parts[-1].size / RATE
    if not parts:
        return None, None
    lang, prob, _ = model.detect_language(audio=np.concatenate(parts))
    return lang, round(float(prob), 3)


class _Decoded:
    """Words of one decode at meeting time, which regions got any, and phantoms dropped."""

    def __init__(self) -> None:
        self.words: list[Word] = []
        self.hit: set[int] = set()
        self.dropped = 0


def _decode(
    model: Any, audio: np.ndarray, starts: list[float], group: list[Span], inp: TranscribeIn
) -> _Decoded:
    """Decode concatenated speech in sequence; words back to meeting time (see _words)."""
    asr = inp.asr
    options = dict(DECODE)
    segments, _ = model.transcribe(audio, language=asr.language, beam_size=asr.beam_size, **options)
    return _words(segments, audio, starts, group, inp)


def _words(
    segments: Iterable[Any],
    audio: np.ndarray,
    starts: list[float],
    group: list[Span],
    inp: TranscribeIn,
) -> _Decoded:
    """Each word goes back to the region its middle falls in; phantom segments are dropped."""
    out = _Decoded()
    for seg in segments:
        seg_words = [w for w in seg.words or [] if w.word.strip()]
        if is_phantom(seg.text, seg_words, audio):
            out.dropped += 1
            continue
        for w in seg_words:
            k = max(0, bisect.bisect_right(starts, (w.start + w.end) / 2) - 1)
            span, shift = group[k], group[k].start - starts[k]
            out.hit.add(k)
            out.words.append(
                Word(
                    text=w.word.strip(),
                    start=round(min(max(w.start + shift, span.start), span.end), 3),
                    end=round(min(max(w.end + shift, span.start), span.end), 3),
                    speaker=inp.padded.track,
                    probability=round(float(w.probability), 3),
                )
            )
    return out


def _decode_group(model: Any, path: Path, group: list[Span], inp: TranscribeIn) -> _Decoded:
    """The group's speech in one decode; a region left without words is decoded on its own
    (a window judged silent or garbled must not take a sparse speaker's sentence with it)."""
    audio, starts = concat(path, group)
    got = _decode(model, audio, starts, group, inp)
    del audio
    if len(group) > 1:
        for k, span in enumerate(group):
            if k not in got.hit:
                alone = _decode(model, read_span(path, span.start, span.end), [0.0], [span], inp)
                got.words.extend(alone.words)
                got.dropped += alone.dropped
    got.words.sort(key=lambda w: w.start)
    return got


def _no_speech(seg: Any) -> bool:
    """faster-whisper's no-speech skip, which its batched pipeline does not apply itself."""
    opts = dict(DECODE)
    return bool(
        seg.no_speech_prob > opts["no_speech_threshold"]
        and seg.avg_logprob < opts["log_prob_threshold"]
    )


def _chunks(starts: list[float], ends: list[float]) -> list[dict[str, float]]:
    """Consecutive regions packed into chunks of at most CHUNK_S (a region is at most that)."""
    out: list[dict[str, float]] = []
    for a, b in zip(starts, ends, strict=True):
        if out and b - out[-1]["start"] <= CHUNK_S:
            out[-1]["end"] = b
        else:
            out.append({"start": a, "end": b})
    return out


def _decode_batched(model: Any, path: Path, group: list[Span], inp: TranscribeIn) -> _Decoded:
    """The group's speech end to end, cut at region ends into chunks of at most CHUNK_S and
    decoded `batch_size` chunks at a time. A chunk holds as many regions as fit: one short
    utterance alone decodes worse than with its neighbours (as a sequential window has)."""
    from faster_whisper import BatchedInferencePipeline

    asr = inp.asr
    audio, starts = concat(path, group)
    ends = [*starts[1:], audio.size / RATE]
    segments, _ = BatchedInferencePipeline(model).transcribe(
        audio,
        language=asr.language,
        beam_size=asr.beam_size,
        batch_size=asr.batch_size,
        temperature=0.0,
        word_timestamps=True,
        vad_filter=False,
        clip_timestamps=_chunks(starts, ends),
    )
    got = _words((s for s in segments if not _no_speech(s)), audio, starts, group, inp)
    got.words.sort(key=lambda w: w.start)
    return got


def transcribe_track(inp: TranscribeIn, ctx: StageContext) -> TranscribeOut:
    asr = inp.asr
    model = load_model(_model_ref(asr), asr.compute_type, asr.cpu_threads, asr.device, _replicas)
    track = inp.padded.track
    words: list[Word] = []
    dropped = 0
    with ctx.storage.local_path(inp.padded.key) as path:
        found, speech = _regions(path, inp, ctx)
        heap.trim()  # the VAD's windows: freed, but resident while the decode runs
        lang, prob = (asr.language, None) if asr.language != "auto" else _detect(model, path, found)
        run = inp.model_copy(update={"asr": asr.model_copy(update={"language": lang or "en"})})
        decode = _decode_batched if asr.batch_size > 1 else _decode_group
        for group in groups([(s.start, s.end) for s in found]):
            got = decode(model, path, group, run)
            words.extend(got.words)
            dropped += got.dropped
            heap.trim()
            ctx.progress(group[-1].end, inp.padded.duration_s)
    key = ctx.key(inp.recording_id, "words", f"track-{track}.json")
    ctx.storage.write_bytes(key, _words_json(words))
    return TranscribeOut(
        track=track,
        words_key=key,
        word_count=len(words),
        speech_s=round(speech, 3),
        language=lang,
        language_probability=prob,
        phantoms_dropped=dropped,
    )


def dominant_language(tracks: list[TranscribeOut]) -> str | None:
    """The language most words were transcribed in (ties: the earliest track's)."""
    counts: dict[str, int] = {}
    for t in tracks:
        if t.language:
            counts[t.language] = counts.get(t.language, 0) + t.word_count
    return max(counts, key=lambda k: counts[k]) if counts else None


def _words_json(words: list[Word]) -> bytes:
    from pydantic import TypeAdapter

    return TypeAdapter(list[Word]).dump_json(words)


def read_words(ctx: StageContext, key: str) -> list[Word]:
    from pydantic import TypeAdapter

    return TypeAdapter(list[Word]).validate_json(ctx.storage.read_bytes(key))
