"""Queries over finished meetings: full-text search with speaker and time, and speaker renames.

Both read or write only through the Store's connection; renames run in one transaction.
"""

from __future__ import annotations

import json
import re
from typing import Any

from reflector_cli.store.repo import Store, now_iso

# Words either side of a hit that still count as "the same passage" when placing it in time.
HIT_WINDOW = 12
SNIPPET_TOKENS = 16
# Control characters mark the matched words in a snippet: they never occur in stored text.
HIT_OPEN, HIT_CLOSE = "\x02", "\x03"
_TOKEN = re.compile(r"\w+", re.UNICODE)
RENAMED = "SPEAKER_RENAMED"


def recording_started_at(store: Store, recording_id: str) -> int | None:
    row = store._one("SELECT started_at_ms FROM recordings WHERE id = ?", (recording_id,))
    return row["started_at_ms"] if row else None


# --------------------------------------------------------------------------- search


def search_terms(text: str) -> list[str]:
    return [t.lower() for t in _TOKEN.findall(text)]


def _fts_query(terms: list[str]) -> str:
    # Every word quoted: user text is never parsed as FTS5 syntax (AND, NEAR, *, column:).
    return " ".join(f'"{t}"' for t in terms)


def search(store: Store, words: str, limit: int = 20) -> list[dict[str, Any]]:
    """Meetings whose title, summary or transcript hold every word (porter-stemmed), best first;
    each hit placed at the speaker and time where the words cluster in the transcript."""
    terms = search_terms(words)
    if not terms:
        return []
    rows = store._all(
        "SELECT t.id, t.title, t.created_at, r.started_at_ms,"
        f" snippet(transcripts_fts, -1, '{HIT_OPEN}', '{HIT_CLOSE}', '…', {SNIPPET_TOKENS})"
        " AS snippet"
        " FROM transcripts_fts JOIN transcripts t ON t.rowid = transcripts_fts.rowid"
        " LEFT JOIN recordings r ON r.id = t.recording_id"
        " WHERE transcripts_fts MATCH ? ORDER BY transcripts_fts.rank LIMIT ?",
        (_fts_query(terms), limit),
    )
    for row in rows:
        row.update(_place(store, row["id"], terms))
    return rows


def _matches(word: str, term: str) -> bool:
    # FTS5 matched porter stems; a shared prefix of the query word is close enough to place it.
    stem = term[: max(3, len(term) - 2)]
    return word == term or word.startswith(stem)


def _place(store: Store, tid: str, terms: list[str]) -> dict[str, Any]:
    """Speaker and start of the transcript word where the most query terms fall near each other."""
    words = store._all(
        "SELECT w.speaker, w.start, w.text, p.name FROM words w LEFT JOIN participants p"
        " ON p.transcript_id = w.transcript_id AND p.speaker = w.speaker"
        " WHERE w.transcript_id = ? ORDER BY w.idx",
        (tid,),
    )
    norm = [" ".join(search_terms(w["text"])) for w in words]
    best, best_score = None, 0
    for i, n in enumerate(norm):
        if not any(_matches(n, t) for t in terms):
            continue
        near = " ".join(norm[i : i + HIT_WINDOW]).split()
        score = sum(any(_matches(x, t) for x in near) for t in terms)
        if score > best_score:
            best, best_score = i, score
    if best is None:  # matched in the title or summary only
        return {"speaker": None, "name": None, "start": None}
    w = words[best]
    return {"speaker": w["speaker"], "name": w["name"] or f"Speaker {w['speaker'] + 1}",
            "start": w["start"]}  # fmt: skip


# --------------------------------------------------------------------------- rename


def _name_pattern(name: str) -> re.Pattern[str]:
    # Word-boundary exact: renaming "Speaker 2" leaves "Speaker 20" and "Speaker 2b" alone.
    return re.compile(rf"(?<!\w){re.escape(name)}(?!\w)")


def _replace_json(value: Any, pat: re.Pattern[str], new: str) -> tuple[Any, int]:
    if isinstance(value, str):
        return pat.subn(lambda _m: new, value)
    if isinstance(value, list):
        pairs = [_replace_json(v, pat, new) for v in value]
        return [p[0] for p in pairs], sum(p[1] for p in pairs)
    if isinstance(value, dict):
        pairs = {k: _replace_json(v, pat, new) for k, v in value.items()}
        return {k: p[0] for k, p in pairs.items()}, sum(p[1] for p in pairs.values())
    return value, 0


def rename_speaker(store: Store, tid: str, speaker: int, new: str) -> dict[str, Any]:
    """Rename one participant and, in the same transaction, every whole-word mention of the old
    name in the generated title, summaries, topics and action items. Returns what changed."""
    with store.transaction():
        row = store._one(
            "SELECT name FROM participants WHERE transcript_id = ? AND speaker = ?", (tid, speaker)
        )
        if row is None:
            raise LookupError(speaker)
        old = row["name"]
        count = _apply(store, tid, speaker, old, new)
        # Kept as an event, so a later run's finalize can apply the rename again.
        store.add_event(tid, None, RENAMED, {"speaker": speaker, "old": old, "new": new})
    return {"speaker": speaker, "old": old, "new": new, "mentions": count}


def _apply(store: Store, tid: str, speaker: int, old: str, new: str) -> int:
    store.conn.execute(
        "UPDATE participants SET name = ? WHERE transcript_id = ? AND speaker = ?",
        (new, tid, speaker),
    )
    return 0 if old == new else _rename_mentions(store, tid, _name_pattern(old), new)


def reapply_renames(store: Store, tid: str) -> int:
    """After a run rewrote the transcript, apply the user's earlier renames again, in order,
    where the speaker still has the name it was renamed from. Returns how many applied."""
    renames = [e["data"] for e in store.events(tid) if e["type"] == RENAMED]
    if not renames:
        return 0
    applied = 0
    with store.transaction():
        for r in renames:
            row = store._one(
                "SELECT name FROM participants WHERE transcript_id = ? AND speaker = ?",
                (tid, r["speaker"]),
            )
            if row is not None and row["name"] == r["old"]:
                _apply(store, tid, r["speaker"], r["old"], r["new"])
                applied += 1
    return applied


def _rename_mentions(store: Store, tid: str, pat: re.Pattern[str], new: str) -> int:
    t = store._one(
        "SELECT title, title_locked, short_summary, long_summary, action_items"
        " FROM transcripts WHERE id = ?",
        (tid,),
    )
    assert t is not None
    fields: dict[str, Any] = {}
    count = 0
    # A title the user set is theirs: generated text only.
    for col in (
        ("short_summary", "long_summary")
        if t["title_locked"]
        else ("title", "short_summary", "long_summary")
    ):
        if t[col]:
            fields[col], n = pat.subn(lambda _m: new, t[col])
            count += n
    items, n = _replace_json(json.loads(t["action_items"] or "{}"), pat, new)
    if n:
        fields["action_items"] = json.dumps(items)
        count += n
    if count:
        cols = "".join(f"{c} = ?, " for c in fields)
        store.conn.execute(
            f"UPDATE transcripts SET {cols}updated_at = ? WHERE id = ?",
            (*fields.values(), now_iso(), tid),
        )
    for tp in store._all("SELECT idx, title, summary FROM topics WHERE transcript_id = ?", (tid,)):
        title, a = pat.subn(lambda _m: new, tp["title"])
        summary, b = pat.subn(lambda _m: new, tp["summary"])
        if a or b:
            store.conn.execute(
                "UPDATE topics SET title = ?, summary = ? WHERE transcript_id = ? AND idx = ?",
                (title, summary, tid, tp["idx"]),
            )
            count += a + b
    return count
