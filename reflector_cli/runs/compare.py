"""Compare runs of one recording on different providers: per-stage outputs, transcript WER, time.

Stage outputs are compared by `stage_runs.output_hash` (sha256 of canonical output JSON); a
differing stage also gets a short field diff. Transcript agreement uses each run's own
TRANSCRIPT event (artifacts live at shared keys, so the last run would overwrite them).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from rich.table import Table

from reflector_cli.core.errors import UserError
from reflector_cli.core.textmetrics import word_error_rate
from reflector_cli.pipeline import dag
from reflector_cli.providers import registry
from reflector_cli.store.repo import Store, now_iso
from reflector_cli.store.runviews import last_event, reused_from

MAX_DIFF = 6
MAX_VALUE = 60


class StageCell(BaseModel):
    status: str
    attempts: int
    output_hash: str | None = None
    wall_s: float | None = None
    reused_from: str | None = None


class StageRow(BaseModel):
    stage: str
    track: int | None = None
    cells: dict[str, StageCell | None]
    equal: bool
    diff: list[str] = []

    @property
    def label(self) -> str:
        return self.stage if self.track is None else f"{self.stage}[{self.track}]"


class TranscriptAgreement(BaseModel):
    words: dict[str, int]
    speakers: dict[str, list[int]]
    wer: dict[str, float | None]  # each provider against the reference provider
    speakers_equal: bool


class ComparisonReport(BaseModel):
    id: str
    recording_id: str
    created_at: str
    reference: str
    providers: list[str]
    runs: dict[str, str]
    run_status: dict[str, str]
    stages: list[StageRow]
    transcript: TranscriptAgreement
    total_wall_s: dict[str, float | None]
    overhead_vs_local: dict[str, float | None]
    agree: bool
    first_difference: str | None = None
    diff: list[str] = []


# --------------------------------------------------------------------------- helpers


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    a = datetime.fromisoformat(start.replace("Z", "+00:00"))
    b = datetime.fromisoformat(end.replace("Z", "+00:00"))
    return round((b - a).total_seconds(), 3)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list):
        out = {f"{prefix}.len": len(value)}
        for i, v in enumerate(value):
            out.update(_flatten(v, f"{prefix}[{i}]"))
        return out
    return {prefix or "value": value}


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"


def field_diff(a: str | None, b: str | None) -> list[str]:
    """Differing fields of two output JSON texts, as `path: a != b` lines (at most MAX_DIFF)."""
    fa = _flatten(json.loads(a)) if a else {}
    fb = _flatten(json.loads(b)) if b else {}
    lines = [
        f"{k}: {_short(fa.get(k))} != {_short(fb.get(k))}"
        for k in sorted(set(fa) | set(fb))
        if fa.get(k) != fb.get(k)
    ]
    if len(lines) > MAX_DIFF:
        lines = [*lines[:MAX_DIFF], f"… {len(lines) - MAX_DIFF} more"]
    return lines


def _tokens(text: str) -> list[str]:
    return [t for t in (w.strip(".,!?;:\"'()").lower() for w in text.split()) if t]


def _transcript_text(store: Store, run_id: str, row: dict[str, Any] | None) -> str | None:
    """The merged text this run produced: its TRANSCRIPT event, or that of the run it reused."""
    source = run_id
    reused = row.get("reused_from") if row else None
    for _ in range(32):  # a reused checkpoint may itself be a reuse: follow to the computing run
        if not reused:
            break
        source = reused
        reused = reused_from(store, source, "merge_transcripts")
    data = last_event(store, source, "TRANSCRIPT")
    return data.get("text") if data else None


def _order(key: tuple[str, int | None]) -> tuple[int, int]:
    index = dag.STAGE_NAMES.index(key[0]) if key[0] in dag.STAGE_NAMES else len(dag.STAGE_NAMES)
    return index, -1 if key[1] is None else key[1]


# --------------------------------------------------------------------------- comparison


def compare_runs(store: Store, run_ids: dict[str, str]) -> ComparisonReport:
    """Compare stored runs (provider -> run id) of one recording; the first is the reference
    unless the registry's reference provider (local) is among them."""
    if len(run_ids) < 2:
        raise UserError("compare: name at least two providers")
    runs: dict[str, dict[str, Any]] = {}
    for provider, rid in run_ids.items():
        run = store.run(rid)
        if run is None:
            raise UserError(f"run {rid}: no such run")
        runs[provider] = run
    recordings = {r["recording_id"] for r in runs.values()}
    if len(recordings) != 1:
        raise UserError(f"compare: runs are of different recordings ({', '.join(recordings)})")
    providers = list(run_ids)
    reference = registry.reference(providers)

    rows_by: dict[str, dict[tuple[str, int | None], dict[str, Any]]] = {
        p: {(r["stage"], r["track"]): r for r in store.stage_runs(runs[p]["id"])} for p in providers
    }
    keys = sorted({k for rows in rows_by.values() for k in rows}, key=_order)
    # A shadow never delivers: when runs differ only in that, delivery rows can't be compared.
    delivers = {json.loads(r["input"]).get("deliver", True) for r in runs.values()}
    skip = {s.name for s in dag.STAGES if "deliver" in s.tags} if len(delivers) > 1 else set()
    stages: list[StageRow] = []
    for key in keys:
        cells: dict[str, StageCell | None] = {}
        for p in providers:
            r = rows_by[p].get(key)
            cells[p] = (
                None
                if r is None
                else StageCell(
                    status=r["status"],
                    attempts=r["attempts"],
                    output_hash=r["output_hash"],
                    wall_s=_seconds(r["started_at"], r["ended_at"]),
                    reused_from=r["reused_from"],
                )
            )
        ref_row = rows_by[reference].get(key)
        equal, diff = True, []
        if key[0] in skip:
            stages.append(
                StageRow(
                    stage=key[0],
                    track=key[1],
                    cells=cells,
                    equal=True,
                    diff=["not compared: delivery was off on one run"],
                )
            )
            continue
        for p in providers:
            c, rc = cells[p], cells[reference]
            same = (
                c is not None
                and rc is not None
                and c.status == rc.status
                and c.output_hash == rc.output_hash
            )
            if not same:
                equal = False
                other = rows_by[p].get(key)
                if not diff:
                    diff = _cell_diff(reference, p, rc, c, ref_row, other)
        stages.append(StageRow(stage=key[0], track=key[1], cells=cells, equal=equal, diff=diff))

    transcript = _transcript_agreement(store, providers, reference, runs, rows_by)
    total = {p: _seconds(runs[p]["created_at"], runs[p]["ended_at"]) for p in providers}
    base = total.get(registry.REFERENCE)
    overhead = {
        p: (round(t / base, 3) if t is not None and base else None) for p, t in total.items()
    }
    first = next((s for s in stages if not s.equal), None)
    statuses = {p: runs[p]["status"] for p in providers}
    transcript_ok = transcript.speakers_equal and all(
        w is not None and w == 0.0 for w in transcript.wer.values()
    )
    agree = first is None and transcript_ok and len(set(statuses.values())) == 1
    diff = first.diff if first else []
    if first is None and not transcript_ok:
        diff = [f"transcript: WER {transcript.wer}, speakers {transcript.speakers}"]
    return ComparisonReport(
        id="c-" + uuid.uuid4().hex[:12],
        recording_id=recordings.pop(),
        created_at=now_iso(),
        reference=reference,
        providers=providers,
        runs={p: runs[p]["id"] for p in providers},
        run_status=statuses,
        stages=stages,
        transcript=transcript,
        total_wall_s=total,
        overhead_vs_local=overhead,
        agree=agree,
        first_difference=first.label if first else None,
        diff=diff,
    )


def _cell_diff(
    ref: str,
    other: str,
    rc: StageCell | None,
    c: StageCell | None,
    ref_row: dict[str, Any] | None,
    row: dict[str, Any] | None,
) -> list[str]:
    if rc is None or c is None:
        return [
            f"{ref}: {'missing' if rc is None else rc.status}, "
            f"{other}: {'missing' if c is None else c.status}"
        ]
    if rc.status != c.status:
        return [f"status: {ref} {rc.status} != {other} {c.status}"]
    lines = field_diff((ref_row or {}).get("output"), (row or {}).get("output"))
    return lines or [f"output_hash: {rc.output_hash} != {c.output_hash} (same fields)"]


def _transcript_agreement(
    store: Store,
    providers: list[str],
    reference: str,
    runs: dict[str, dict[str, Any]],
    rows_by: dict[str, dict[tuple[str, int | None], dict[str, Any]]],
) -> TranscriptAgreement:
    texts: dict[str, list[str] | None] = {}
    speakers: dict[str, list[int]] = {}
    for p in providers:
        merge = rows_by[p].get(("merge_transcripts", None))
        text = _transcript_text(store, runs[p]["id"], merge)
        texts[p] = _tokens(text) if text is not None else None
        out = json.loads(merge["output"]) if merge and merge["output"] else {}
        speakers[p] = list(out.get("speakers", []))
    ref = texts[reference]
    wer = {
        p: (round(word_error_rate(ref, t), 4) if ref is not None and t is not None else None)
        for p, t in texts.items()
    }
    return TranscriptAgreement(
        words={p: len(t or []) for p, t in texts.items()},
        speakers=speakers,
        wer=wer,
        speakers_equal=len({tuple(s) for s in speakers.values()}) == 1,
    )


def store_comparison(store: Store, report: ComparisonReport) -> None:
    store.add_comparison(
        {
            "id": report.id,
            "recording_id": report.recording_id,
            "created_at": report.created_at,
            "providers": json.dumps(report.providers),
            "runs": json.dumps(report.runs),
            "agree": int(report.agree),
            "report": report.model_dump_json(),
        }
    )


# --------------------------------------------------------------------------- rendering


def _cell_text(c: StageCell | None) -> str:
    if c is None:
        return "[dim]—[/]"
    colour = {"done": "green", "failed": "red"}.get(c.status, "yellow")
    wall = f"{c.wall_s:.2f}s" if c.wall_s is not None else "-"
    reused = " reused" if c.reused_from else ""
    return f"[{colour}]{c.status}[/] ×{c.attempts} {wall}{reused}"


def render_table(report: ComparisonReport) -> Table:
    table = Table(title=f"compare {report.recording_id}: {' vs '.join(report.providers)}")
    table.add_column("stage")
    for p in report.providers:
        table.add_column(f"{p} ({report.runs[p]})")
    table.add_column("output")
    for s in report.stages:
        verdict = "[green]equal[/]" if s.equal else "[red]differs[/]"
        table.add_row(s.label, *(_cell_text(s.cells[p]) for p in report.providers), verdict)
    t = report.transcript
    totals = ", ".join(
        f"{p} {report.total_wall_s[p]}s"
        + (f" (×{report.overhead_vs_local[p]})" if report.overhead_vs_local.get(p) else "")
        for p in report.providers
    )
    lines = [
        f"WER vs {report.reference}: "
        + ", ".join(f"{p} {w}" for p, w in t.wer.items() if p != report.reference),
        f"speakers {'identical' if t.speakers_equal else 'DIFFER'}: {t.speakers}",
        f"total: {totals}",
        "[green]agree[/]"
        if report.agree
        else f"[red]disagree[/] at {report.first_difference}: " + "; ".join(report.diff),
    ]
    table.caption = "\n".join(lines)
    return table
