"""Accuracy of a processed transcript against the fixture's ground truth (script + timings)."""

from __future__ import annotations

import statistics
from typing import Any

from reflector_cli.core.textmetrics import word_error_rate

SLACK_S = 0.3


def _utterance_of(word: dict[str, Any], utterances: list[dict[str, Any]]) -> int | None:
    mid = (word["start"] + word["end"]) / 2
    for i, u in enumerate(utterances):
        if u["start"] - SLACK_S <= mid <= u["end"] + SLACK_S:
            return i
    return None


def accuracy(words: list[dict[str, Any]], utterances: list[dict[str, Any]]) -> dict[str, Any]:
    """Speaker attribution, first-word timing error and per-speaker WER."""
    placed = [(w, _utterance_of(w, utterances)) for w in words]
    inside = [(w, i) for w, i in placed if i is not None]
    right = sum(w["speaker"] == utterances[i]["speaker"] for w, i in inside)
    onset: list[float] = []
    for i, u in enumerate(utterances):
        starts = [w["start"] for w, j in inside if j == i]
        if starts:
            onset.append(abs(min(starts) - u["start"]))
    wer = {}
    for speaker in sorted({u["speaker"] for u in utterances}):
        ref = [u["text"] for u in utterances if u["speaker"] == speaker]
        hyp = [w["text"] for w in words if w["speaker"] == speaker]
        wer[speaker] = round(word_error_rate(ref, hyp), 3)
    return {
        "words": len(words),
        "words_in_utterances": len(inside) / max(1, len(words)),
        "speaker_accuracy": right / max(1, len(inside)),
        "utterances_found": len(onset) / max(1, len(utterances)),
        "median_onset_error_s": statistics.median(onset) if onset else None,
        "wer_by_speaker": wer,
    }
