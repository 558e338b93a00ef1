"""Silero VAD speech timestamps in bounded memory, the same as faster-whisper's.

faster-whisper runs the Silero encoder on up to 10,000 frames (5 minutes) in one ONNX call,
whose intermediate tensors take ~150 MB per process; here the same session runs on small
batches with the recurrent state carried between them, as upstream carries it between its
own batches, so the speech probabilities (and the timestamps below) are identical.
"""

from __future__ import annotations

import numpy as np
from faster_whisper.vad import VadOptions, get_vad_model

WINDOW = 512  # samples per Silero frame at 16 kHz
CONTEXT = 64  # samples of the previous frame each frame is given
# Frames per ONNX call (16 s of audio): a few MB of intermediate tensors.
BATCH_FRAMES = 500


def speech_probs(audio: np.ndarray) -> np.ndarray:
    """Silero's speech probability per WINDOW-sample frame of `audio` (a multiple of WINDOW,
    modified in place like upstream's)."""
    session = get_vad_model().session
    frames = audio.reshape(-1, WINDOW)
    # As upstream: its context view zeroes the last frame's tail in the audio itself.
    frames[-1, -CONTEXT:] = 0.0
    context = np.roll(frames[:, -CONTEXT:], 1, axis=0)
    h = np.zeros((1, 1, 128), dtype="float32")
    c = np.zeros((1, 1, 128), dtype="float32")
    out = []
    for i in range(0, len(frames), BATCH_FRAMES):
        batch = np.concatenate([context[i : i + BATCH_FRAMES], frames[i : i + BATCH_FRAMES]], 1)
        probs, h, c = session.run(None, {"input": batch, "h": h, "c": c})
        out.append(probs)
    return np.concatenate(out, axis=0)


def speech_timestamps(audio: np.ndarray, opts: VadOptions, rate: int = 16000) -> list[dict]:
    """faster_whisper.vad.get_speech_timestamps on `audio`, with bounded ONNX batches."""
    padded = np.pad(audio, (0, WINDOW - audio.shape[0] % WINDOW))
    return _timestamps(speech_probs(padded), len(audio), opts, rate)


def _timestamps(probs: np.ndarray, length: int, opts: VadOptions, rate: int) -> list[dict]:
    """Upstream's state machine over the probabilities (faster-whisper 1.2, vad.py), unchanged."""
    threshold = opts.threshold
    neg_threshold = opts.neg_threshold
    if neg_threshold is None:
        neg_threshold = max(threshold - 0.15, 0.01)
    min_speech = rate * opts.min_speech_duration_ms / 1000
    pad = rate * opts.speech_pad_ms / 1000
    max_speech = rate * opts.max_speech_duration_s - WINDOW - 2 * pad
    min_silence = rate * opts.min_silence_duration_ms / 1000
    min_silence_at_max = rate * 98 / 1000

    triggered = False
    speeches: list[dict] = []
    cur: dict = {}
    temp_end = prev_end = next_start = 0
    for i, p in enumerate(probs):
        pos = WINDOW * i
        if p >= threshold and temp_end:
            temp_end = 0
            if next_start < prev_end:
                next_start = pos
        if p >= threshold and not triggered:
            triggered = True
            cur["start"] = pos
            continue
        if triggered and pos - cur["start"] > max_speech:
            if prev_end:
                cur["end"] = prev_end
                speeches.append(cur)
                cur = {}
                if next_start < prev_end:  # silence since, and still no speech
                    triggered = False
                else:
                    cur["start"] = next_start
                prev_end = next_start = temp_end = 0
            else:
                cur["end"] = pos
                speeches.append(cur)
                cur = {}
                prev_end = next_start = temp_end = 0
                triggered = False
                continue
        if p < neg_threshold and triggered:
            if not temp_end:
                temp_end = pos
            if pos - temp_end > min_silence_at_max:
                prev_end = temp_end
            if pos - temp_end < min_silence:
                continue
            cur["end"] = temp_end
            if cur["end"] - cur["start"] > min_speech:
                speeches.append(cur)
            cur = {}
            prev_end = next_start = temp_end = 0
            triggered = False
            continue
    if cur and length - cur["start"] > min_speech:
        cur["end"] = length
        speeches.append(cur)
    return _padded(speeches, length, pad)


def _padded(speeches: list[dict], length: int, pad: float) -> list[dict]:
    """Widen each region by `pad` samples, splitting shorter silences between neighbours."""
    for i, speech in enumerate(speeches):
        if i == 0:
            speech["start"] = int(max(0, speech["start"] - pad))
        if i != len(speeches) - 1:
            silence = speeches[i + 1]["start"] - speech["end"]
            if silence < 2 * pad:
                speech["end"] += int(silence // 2)
                speeches[i + 1]["start"] = int(max(0, speeches[i + 1]["start"] - silence // 2))
            else:
                speech["end"] = int(min(length, speech["end"] + pad))
                speeches[i + 1]["start"] = int(max(0, speeches[i + 1]["start"] - pad))
        else:
            speech["end"] = int(min(length, speech["end"] + pad))
    return speeches
