"""Scores one processed crosstalk meeting against its truth.json: speaker-attributed WER, other
people's words per speaker, words removed as crosstalk (and how many were the speaker's own)."""

from __future__ import annotations

from typing import Any

from reflector_cli.core.textmetrics import edit_distance, normalize_words

SLACK_S = 0.3


def _inside(t: float, u: dict[str, Any]) -> bool:
    return u["start"] - SLACK_S <= t <= u["end"] + SLACK_S


def _owner(word: dict[str, Any], name: str, utts: list[dict[str, Any]]) -> str | None:
    """'own' when the word's middle is in one of the speaker's utterances, 'other' when it is
    only in someone else's, None when it is in nobody's."""
    mid = (word["start"] + word["end"]) / 2
    here = [u for u in utts if _inside(mid, u)]
    if any(u["speaker"] == name for u in here):
        return "own"
    return "other" if here else None


def _really_own(word: dict[str, Any], name: str, utts: list[dict[str, Any]]) -> bool:
    """A removed word was the speaker's own: inside their utterance and, where someone else
    talks at the same time, a word of their text and not of the other's (else it is a leak)."""
    if _owner(word, name, utts) != "own":
        return False
    mid = (word["start"] + word["end"]) / 2
    others = [u for u in utts if _inside(mid, u) and u["speaker"] != name]
    if not others:
        return True
    token = normalize_words([word["text"]])
    mine = [u for u in utts if _inside(mid, u) and u["speaker"] == name]
    in_mine = any(set(token) <= set(normalize_words([u["text"]])) for u in mine)
    in_other = any(set(token) <= set(normalize_words([u["text"]])) for u in others)
    return in_mine and not in_other


def _wer(ref: list[str], hyp: list[str]) -> tuple[int, int]:
    a, b = normalize_words(ref), normalize_words(hyp)
    return edit_distance(a, b), len(a)


def score(run: dict[str, Any], truth: dict[str, Any]) -> dict[str, Any]:
    utts = truth["utterances"]
    names = {p["speaker"]: p["name"] for p in run["participants"]}
    words = sorted(run["words"], key=lambda w: w["start"])
    speaker_wer: dict[str, float] = {}
    others: dict[str, int] = {}
    edits = total = 0
    for idx in sorted(names):
        name = names[idx]
        mine = [w for w in words if w["speaker"] == idx]
        e, n = _wer([u["text"] for u in utts if u["speaker"] == name], [w["text"] for w in mine])
        edits, total = edits + e, total + n
        speaker_wer[name] = round(e / max(1, n), 3)
        others[name] = sum(_owner(w, name, utts) == "other" for w in mine)
    own_removed: dict[str, int] = {}
    for w in run["removed"]:
        name = names[w["speaker"]]
        if _really_own(w, name, utts):
            own_removed[name] = own_removed.get(name, 0) + 1
    return {
        "total_wer": round(edits / max(1, total), 3),
        "speaker_wer": speaker_wer,
        "others_words": others,
        "removed_per_track": run["removed_per_track"],
        "own_removed": sum(own_removed.values()),
        "own_removed_by": own_removed,
        "overlaps": _overlaps(words, names, utts),
    }


def _overlaps(
    words: list[dict[str, Any]], names: dict[int, str], utts: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """WER of each utterance that overlaps another talker's, from that talker's words in it."""
    index = {v: k for k, v in names.items()}
    out = []
    for u in utts:
        hosts = [
            v["speaker"]
            for v in utts
            if v is not u
            and v["speaker"] != u["speaker"]
            and v["start"] < u["end"]
            and u["start"] < v["end"]
        ]
        if not hosts:
            continue
        mine = [
            w["text"]
            for w in words
            if w["speaker"] == index[u["speaker"]] and _inside((w["start"] + w["end"]) / 2, u)
        ]
        e, n = _wer([u["text"]], mine)
        out.append(
            {
                "speaker": u["speaker"],
                "start": u["start"],
                "end": u["end"],
                "with": ", ".join(hosts),
                "wer": round(e / max(1, n), 3),
            }
        )
    return out
