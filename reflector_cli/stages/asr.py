"""transcribe_track: faster-whisper on one padded track; every word carries the track's speaker.

The model is loaded once per process and cached, so a pool worker or an engine worker pays
the load cost once, not once per track.
"""

from __future__ import annotations

import os
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

from reflector_cli.context import StageContext
from reflector_cli.errors import ConfigError
from reflector_cli.models import AsrOptions, TranscribeIn, TranscribeOut, Word

_load_lock = threading.Lock()


def _model_ref(asr: AsrOptions) -> str:
    """A local directory, or a bare name only if it is already in the local HF cache."""
    path = Path(asr.model).expanduser()
    if path.is_dir():
        if not (path / "model.bin").is_file():
            raise ConfigError(f"model {asr.model}: directory has no model.bin (not CTranslate2)")
        return str(path)
    if "/" in asr.model or asr.model.startswith("."):
        raise ConfigError(f"model {asr.model}: no such directory")
    return asr.model


@lru_cache(maxsize=2)
def load_model(model: str, compute_type: str, cpu_threads: int) -> Any:
    from faster_whisper import WhisperModel

    # Never reach for the hub: a name must already be cached locally.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with _load_lock:
        return WhisperModel(
            model,
            device="cpu",
            compute_type=compute_type,
            cpu_threads=cpu_threads,
            local_files_only=True,
        )


def warm(asr: AsrOptions) -> None:
    """Load the model this process will transcribe with, ahead of the first track."""
    load_model(_model_ref(asr), asr.compute_type, asr.cpu_threads)


def transcribe_track(inp: TranscribeIn, ctx: StageContext) -> TranscribeOut:
    asr = inp.asr
    model = load_model(_model_ref(asr), asr.compute_type, asr.cpu_threads)
    track = inp.padded.track
    words: list[Word] = []
    with ctx.storage.local_path(inp.padded.key) as path:
        segments, info = model.transcribe(
            str(path),
            language=asr.language or None,
            beam_size=asr.beam_size,
            word_timestamps=True,
            vad_filter=asr.vad,
            condition_on_previous_text=False,
        )
        total = float(info.duration or inp.padded.duration_s)
        for seg in segments:
            for w in seg.words or []:
                text = w.word.strip()
                if text:
                    words.append(
                        Word(text=text, start=round(w.start, 3), end=round(w.end, 3), speaker=track)
                    )
            ctx.progress(min(seg.end, total), total)
    speech = float(getattr(info, "duration_after_vad", None) or info.duration or 0.0)
    key = ctx.key(inp.recording_id, "words", f"track-{track}.json")
    ctx.storage.write_bytes(key, _words_json(words))
    return TranscribeOut(track=track, words_key=key, word_count=len(words), speech_s=speech)


def _words_json(words: list[Word]) -> bytes:
    from pydantic import TypeAdapter

    return TypeAdapter(list[Word]).dump_json(words)


def read_words(ctx: StageContext, key: str) -> list[Word]:
    from pydantic import TypeAdapter

    return TypeAdapter(list[Word]).validate_json(ctx.storage.read_bytes(key))
