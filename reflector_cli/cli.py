"""The `reflector` command line: parses, calls the core, renders (rich or --json).

Exit codes: 0 success, 1 bad input or a failed run, 2 usage error (from Typer/Click).
"""

from __future__ import annotations

import json
import os
import sys
from enum import StrEnum
from importlib.metadata import version as pkg_version
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from reflector_cli.config import Settings, load_settings
from reflector_cli.errors import ReflectorError, UserError

app = typer.Typer(
    help="Turn multitrack meeting recordings into speaker-attributed transcripts, topics, "
    "titles and summaries stored in SQLite.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
runs_app = typer.Typer(help="List pipeline runs, or show one run's stages.")
app.add_typer(runs_app, name="runs")
worker_app = typer.Typer(help="Run a worker that executes stages for a durable provider.")
app.add_typer(worker_app, name="worker")

err = Console(stderr=True)
out = Console()

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="Where artifacts and reflector.sqlite3 live.", show_default=False
    ),
]


def _emit_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def _settings(**overrides: Any) -> Settings:
    try:
        return load_settings(**overrides)
    except ValidationError as exc:  # name the setting, never echo its (maybe secret) value
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        raise UserError(f"setting {where}: {first['msg']}") from None


def _version_cb(value: bool) -> None:
    if value:
        typer.echo(f"reflector {pkg_version('reflector-cli')}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_cb, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    """reflector: multitrack meeting recordings in, transcripts and summaries out."""


# --------------------------------------------------------------------------- process


class Provider(StrEnum):
    local = "local"
    hatchet = "hatchet"
    celery = "celery"


@app.command()
def process(
    recordings: Annotated[
        list[str],
        typer.Argument(help="Folders of per-participant tracks (or Daily.co recording ids)."),
    ],
    provider: Annotated[
        Provider | None,
        typer.Option(help="Who runs the stages [default: $DURABLE_WORKFLOW_PROVIDER or local]."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Recompute every stage.")] = False,
    shadow: Annotated[
        Provider | None,
        typer.Option(
            help="Also run on this provider as a shadow and store a comparison "
            "[default: $DURABLE_WORKFLOW_SHADOW_MODE]. Never changes the transcript."
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Path to a CTranslate2 whisper model directory.")
    ] = None,
    language: Annotated[str | None, typer.Option(help="Spoken language code.")] = None,
    llm: Annotated[str | None, typer.Option(help="LLM backend for topics/title/summary.")] = None,
    compute_type: Annotated[str | None, typer.Option(help="int8, int8_float32, float32…")] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads per transcription.")] = None,
    workers: Annotated[int | None, typer.Option(help="Stages run in parallel (local).")] = None,
    no_deliver: Annotated[
        bool, typer.Option("--no-deliver", help="Skip Zulip and webhook delivery.")
    ] = False,
    no_wait: Annotated[
        bool,
        typer.Option(
            "--no-wait",
            help="Hatchet only: submit and print the run id; `reflector runs show RUN` follows it.",
        ),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Validate the input and show tracks, plan and LLM cost estimate; store nothing.",
        ),
    ] = False,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Process recordings through every stage; finished work is reused unless --force."""
    from reflector_cli.display import LiveDisplay
    from reflector_cli.orchestrate import process_recording

    settings = _settings(
        data_dir=data_dir,
        model=model,
        language=language,
        llm=llm,
        compute_type=compute_type,
        cpu_threads=threads,
        workers=workers,
    )
    if dry_run:
        from reflector_cli.plan import dry_run_plan

        plans = [dry_run_plan(source, settings) for source in recordings]
        if as_json:
            _emit_json(plans[0] if len(plans) == 1 else plans)
        else:
            for p in plans:
                _print_plan(p)
        return
    if no_wait:
        _submit_no_wait(recordings, settings, provider, force, not no_deliver, as_json)
        return
    results: list[dict[str, Any]] = []
    failed = False
    for source in recordings:
        show_live = not as_json and err.is_terminal
        display = LiveDisplay(err) if show_live else None
        if display:
            display.__enter__()
        try:
            res = process_recording(
                source,
                settings,
                provider=provider.value if provider else None,
                force=force,
                deliver=not no_deliver,
                observer=display,
                shadow=shadow.value if shadow else None,
            )
        finally:
            if display:
                display.__exit__(None, None, None)
        results.append(res.view)
        if res.shadow:
            sh = res.shadow
            verdict = {True: "agrees", False: "DIFFERS", None: "failed"}[sh["agree"]]
            err.print(
                f"shadow {sh['provider']} run {sh['run_id']}: {verdict}"
                + (f" ({sh['error']})" if sh.get("error") else ""),
                markup=False,
            )
        if not res.ok:
            failed = True
            err.print(
                Text.assemble(
                    ("error: ", "bold red"),
                    f"{source}: stage {res.error_stage} failed: {' '.join(str(res.error).split())}",
                ),
                soft_wrap=True,
                highlight=False,
            )
        elif not as_json:
            _print_result(res.view, reused=res.reused, settings=settings)
    if as_json:
        _emit_json(results[0] if len(results) == 1 else results)
    if failed:
        raise typer.Exit(1)


def _submit_no_wait(
    recordings: list[str],
    settings: Settings,
    provider: Provider | None,
    force: bool,
    deliver: bool,
    as_json: bool,
) -> None:
    if (provider.value if provider else settings.provider) != "hatchet":
        raise typer.BadParameter("--no-wait needs the hatchet provider")
    from reflector_cli.providers.hatchet import submit_run

    runs = [
        {"source": src, "run_id": submit_run(src, settings, force=force, deliver=deliver)}
        for src in recordings
    ]
    if as_json:
        _emit_json(runs[0] if len(runs) == 1 else runs)
    else:
        for r in runs:
            err.print(
                f"submitted {r['source']} as run {r['run_id']}: reflector runs show {r['run_id']}",
                markup=False,
            )


def _print_plan(plan: dict[str, Any]) -> None:
    table = Table(
        "track",
        "participant",
        "offset (s)",
        "duration (s)",
        "consent",
        title=f"{plan['source']} → {plan['transcript_id']} (dry run)",
    )
    for t in plan["tracks"]:
        table.add_row(
            t["file"],
            t["name"],
            f"{t['offset_s']:.2f}",
            f"{t['duration_s']:.1f}",
            "yes" if t["consent"] else "no",
        )
    out.print(table)
    llm = plan["llm"]
    usd = "unknown price" if llm.get("usd") is None else f"≈ ${llm['usd']:.4f}"
    out.print(
        f"meeting {plan['duration_s']:.1f} s · provider {plan['provider']} · "
        f"~{plan['words_estimate']} words ({plan['words_source']})"
    )
    out.print(
        f"LLM {llm['backend']}: {llm.get('calls', 0)} calls, "
        f"~{llm.get('input_tokens', 0)} in / {llm.get('output_tokens', 0)} out tokens, {usd}"
    )
    for w in plan["warnings"]:
        err.print(f"warning: {w}", markup=False)


def _print_result(view: dict[str, Any], *, reused: bool, settings: Settings) -> None:
    t = Table(show_header=False, box=None, pad_edge=False)
    t.add_column(style="bold")
    t.add_column()
    if reused:
        t.add_row("note", "already processed: stored result (use --force to recompute)")
    dur = view.get("duration_s") or 0.0
    t.add_row("transcript", view["transcript_id"])
    t.add_row("run", str(view["run_id"]))
    t.add_row("status", view["status"])
    t.add_row("title", str(view["title"]))
    t.add_row("duration", f"{int(dur // 60)}:{dur % 60:04.1f}")
    t.add_row("speakers", ", ".join(p["name"] for p in view["participants"]))
    t.add_row("words", str(view["word_count"]))
    t.add_row("topics", str(len(view["topics"])))
    t.add_row("database", str(settings.db_path))
    t.add_row("next", f"reflector export {view['transcript_id']} --format md")
    err.print(t)


# --------------------------------------------------------------------------- show / export


def _open_store(settings: Settings) -> Any:
    from reflector_cli.store.repo import Store

    if not settings.db_path.exists():
        raise UserError(f"{settings.db_path}: no database yet (run `reflector process` first)")
    return Store(settings.db_path)


def _find_transcript(store: Any, ident: str) -> dict[str, Any]:
    row = store.find_transcript(ident)
    if row is None:
        raise UserError(f"{ident}: no such transcript, recording or run")
    return row


@app.command()
def show(
    ident: Annotated[str, typer.Argument(help="Transcript id, recording id or run id.")],
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a stored transcript: title, summary, topics, participants."""
    from reflector_cli.pipeline import result_view

    store = _open_store(_settings(data_dir=data_dir))
    row = _find_transcript(store, ident)
    view = result_view(store, row["id"])
    view |= {
        "recording_id": row["recording_id"],
        "audio_deleted": bool(row["audio_deleted"]),
        "error_stage": row["error_stage"],
        "error_message": row["error_message"],
        "action_items": json.loads(row["action_items"] or "{}"),
    }
    if as_json:
        _emit_json(view)
        return
    out.print(f"[bold]{view['title'] or '(untitled)'}[/]  [dim]{view['transcript_id']}[/]")
    out.print(
        f"status {view['status']} · {view['word_count']} words · "
        f"{len(view['participants'])} speakers"
    )
    if view["error_message"]:
        out.print(f"[red]error in {view['error_stage']}: {view['error_message']}[/]")
    if view["short_summary"]:
        out.print(f"\n{view['short_summary']}\n")
    table = Table("start", "topic", "summary")
    for tp in view["topics"]:
        table.add_row(_mmss(tp["start"]), tp["title"], tp["summary"])
    out.print(table)


def _mmss(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 60:02d}:{s % 60:02d}"


class ExportFormat(StrEnum):
    json = "json"
    txt = "txt"
    srt = "srt"
    vtt = "vtt"
    md = "md"


@app.command()
def export(
    ident: Annotated[str, typer.Argument(help="Transcript id, recording id or run id.")],
    fmt: Annotated[ExportFormat, typer.Option("--format", "-f", help="Output format.")] = (
        ExportFormat.json
    ),
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to a file instead of stdout.")
    ] = None,
    data_dir: DataDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
) -> None:
    """Export a transcript with speaker names (json, txt, srt, vtt, md)."""
    from reflector_cli import export as exporters
    from reflector_cli.pipeline import final_doc_from_store, result_view

    store = _open_store(_settings(data_dir=data_dir))
    row = _find_transcript(store, ident)
    if as_json:
        fmt = ExportFormat.json
    if fmt is ExportFormat.json:
        doc = result_view(store, row["id"])
        doc["action_items"] = json.loads(row["action_items"] or "{}")
        doc["words"] = store.words(row["id"])
        text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    else:
        final = final_doc_from_store(store, row["id"])
        render = {
            ExportFormat.txt: exporters.to_txt,
            ExportFormat.srt: exporters.to_srt,
            ExportFormat.vtt: exporters.to_vtt,
            ExportFormat.md: exporters.to_markdown,
        }[fmt]
        text = render(final)
    if output:
        output.write_text(text, encoding="utf-8")
        err.print(f"wrote {output}")
    else:
        sys.stdout.write(text)


# --------------------------------------------------------------------------- runs


@runs_app.callback(invoke_without_command=True)
def runs_list(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(help="How many runs, newest first.")] = 20,
    comparisons: Annotated[
        bool, typer.Option("--comparisons", help="List stored provider comparisons instead.")
    ] = False,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List recent runs (newest first)."""
    if ctx.invoked_subcommand:
        return
    store = _open_store(_settings(data_dir=data_dir))
    if comparisons:
        _list_comparisons(store, limit, as_json)
        return
    rows = store.runs(limit)
    doc = [
        {
            k: r[k]
            for k in (
                "id",
                "recording_id",
                "transcript_id",
                "provider",
                "role",
                "status",
                "created_at",
                "ended_at",
                "error_stage",
                "error_message",
            )
        }
        for r in rows
    ]
    if as_json:
        _emit_json(doc)
        return
    table = Table("run", "transcript", "provider", "status", "started", "ended")
    for r in doc:
        table.add_row(
            r["id"],
            r["transcript_id"],
            r["provider"],
            r["status"],
            r["created_at"],
            r["ended_at"] or "",
        )
    out.print(table)


def _list_comparisons(store: Any, limit: int, as_json: bool) -> None:
    rows = [
        {
            "id": r["id"],
            "recording_id": r["recording_id"],
            "created_at": r["created_at"],
            "providers": json.loads(r["providers"]),
            "runs": json.loads(r["runs"]),
            "agree": bool(r["agree"]),
        }
        for r in store.comparisons(limit)
    ]
    if as_json:
        _emit_json(rows)
        return
    table = Table("comparison", "recording", "providers", "agree", "created")
    for r in rows:
        table.add_row(
            r["id"],
            r["recording_id"],
            ", ".join(r["providers"]),
            "[green]yes[/]" if r["agree"] else "[red]no[/]",
            r["created_at"],
        )
    out.print(table)


@runs_app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one run: every stage with status, attempts, times and whether it was reused."""
    settings = _settings(data_dir=data_dir)
    store = _open_store(settings)
    run = store.run(run_id)
    if run is None:
        raise UserError(f"{run_id}: no such run")
    if run["provider"] == "hatchet" and run["status"] in ("submitted", "running"):
        from reflector_cli.providers.hatchet import sync_run

        sync_run(store, run["id"], settings)  # the engine is the source of truth while it runs
        run = store.run(run["id"])
    stages = [
        {
            "stage": s["stage"],
            "track": s["track"],
            "status": s["status"],
            "attempts": s["attempts"],
            "started_at": s["started_at"],
            "ended_at": s["ended_at"],
            "reused": s["reused_from"] is not None,
        }
        for s in store.stage_runs(run["id"])
    ]
    doc = {
        "run_id": run["id"],
        "status": run["status"],
        "provider": run["provider"],
        "stages": stages,
    }
    if as_json:
        _emit_json(doc)
        return
    out.print(f"[bold]{run['id']}[/] {run['provider']} · {run['status']}")
    if run["error_message"]:
        out.print(f"[red]{run['error_stage']}: {run['error_message']}[/]")
    table = Table("stage", "track", "status", "attempts", "started", "ended", "reused")
    for s in stages:
        table.add_row(
            s["stage"],
            "" if s["track"] is None else str(s["track"]),
            s["status"],
            str(s["attempts"]),
            s["started_at"] or "",
            s["ended_at"] or "",
            "yes" if s["reused"] else "",
        )
    out.print(table)


# --------------------------------------------------------------------------- compare / workers


@app.command()
def compare(
    recording: Annotated[str, typer.Argument(help="Folder (or Daily.co recording id).")],
    celery: Annotated[bool, typer.Option("--celery", help="Run on Celery workers.")] = False,
    hatchet: Annotated[bool, typer.Option("--hatchet", help="Run on a Hatchet engine.")] = False,
    local: Annotated[bool, typer.Option("--local", help="Run on the local provider.")] = False,
    reuse: Annotated[
        bool, typer.Option("--reuse", help="Reuse each provider's latest finished run.")
    ] = False,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a recording on several providers and check they agree, stage by stage.

    Prints status, attempts, output hash equality and wall time per stage and provider, then
    transcript agreement (WER, speakers) and overhead against local. Exit 0 when all outputs
    agree, 1 when they differ (naming the first differing stage). Stored; see `runs --comparisons`.
    """
    from reflector_cli.compare import render_table, run_compare

    providers = [p for p, on in (("local", local), ("celery", celery), ("hatchet", hatchet)) if on]
    if len(providers) < 2:
        raise typer.BadParameter("name at least two of --local, --celery, --hatchet")
    report = run_compare(recording, providers, _settings(data_dir=data_dir), reuse)
    if as_json:
        _emit_json(report.model_dump(mode="json"))
    else:
        out.print(render_table(report))
    if not report.agree:
        if not as_json:
            err.print(
                Text.assemble(
                    ("outputs differ", "bold red"), f" first at {report.first_difference}"
                )
            )
            for line in report.diff:
                err.print(f"  {line}", markup=False)
        raise typer.Exit(1)


@worker_app.command("celery")
def worker_celery(
    concurrency: Annotated[
        int, typer.Option(help="Worker processes (one whisper model each).")
    ] = os.cpu_count() or 1,
    data_dir: DataDirOpt = None,
) -> None:
    """Consume stages from CELERY_BROKER_URL (Redis). Needs the same data dir as submitters."""
    from reflector_cli.providers.celery_app import run_worker

    run_worker(_settings(data_dir=data_dir), concurrency)


@worker_app.command("hatchet")
def worker_hatchet(
    slots: Annotated[int, typer.Option(help="Tasks this worker runs at once.")] = (
        os.cpu_count() or 1
    ),
    data_dir: DataDirOpt = None,
) -> None:
    """Register the pipeline workflows with the Hatchet engine and run its tasks."""
    from reflector_cli.providers.hatchet import run_worker

    run_worker(_settings(data_dir=data_dir), slots)


# --------------------------------------------------------------------------- replay


@app.command()
def replay(
    run_id: Annotated[str, typer.Argument(help="The run to replay (id or unique prefix).")],
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Replay with the code installed now even if stage versions changed: changed "
            "stages and everything downstream execute, unchanged ones come from checkpoints.",
        ),
    ] = False,
    from_stage: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="Re-execute this stage and everything downstream; upstream outputs are taken "
            "from the replayed run.",
        ),
    ] = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-execute a past run from its recorded input, as a new run linked to the old one.

    Version-locked: if any stage's code changed since the run, replay refuses (exit 1) and
    names the stages, unless --force. Without --force or --from, stages that did not finish
    (failed or interrupted) and their descendants execute; finished ones are reused. A run whose
    audio was deleted for consent can only replay text stages (--from detect_topics).

    Hatchet runs: without --force or --from, the engine replays the same engine run in place
    (its failed tasks and their descendants, with the code the workers run now); the other
    stages are recorded as reused from the old run. With --force or --from, a fresh engine run
    of the current workflow is started with the same input.
    """
    from reflector_cli.display import LiveDisplay
    from reflector_cli.replay import replay as do_replay

    settings = _settings(data_dir=data_dir)
    display = LiveDisplay(err) if (not as_json and err.is_terminal) else None
    if display:
        display.__enter__()
    try:
        res = do_replay(run_id, settings, force=force, from_stage=from_stage, observer=display)
    finally:
        if display:
            display.__exit__(None, None, None)
    doc = {
        "run_id": res.new_run,
        "replay_of": res.old_run,
        "status": res.status,
        "rerun": res.rerun,
        "changed_code": res.changed_code,
        "diff": res.diff,
        "error_stage": res.error_stage,
        "error": res.error,
    }
    if as_json:
        _emit_json(doc)
    else:
        _print_replay(doc)
    if res.status != "ended":
        raise typer.Exit(1)


def _print_replay(doc: dict[str, Any]) -> None:
    err.print(f"replayed {doc['replay_of']} as {doc['run_id']}: {doc['status']}")
    if doc["changed_code"]:
        err.print(f"stages with new code: {', '.join(doc['changed_code'])}")
    err.print(f"re-executed: {', '.join(doc['rerun']) or 'nothing (all reused)'}")
    table = Table("output", "changed", "before → after")
    for key in ("title", "short_summary", "long_summary", "topics"):
        d = doc["diff"].get(key, {})
        detail = f"{d.get('old')} → {d.get('new')}" if key == "title" else ""
        table.add_row(key, "yes" if d.get("changed") else "no", detail)
    tr = doc["diff"].get("transcript", {})
    table.add_row(
        "transcript",
        f"WER {tr.get('wer', 0):.3f}",
        f"{tr.get('old_words')} → {tr.get('new_words')} words",
    )
    out.print(table)


# --------------------------------------------------------------------------- doctor


@app.command()
def doctor(data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Check the installation: model, audio codecs, data dir, database, providers."""
    from reflector_cli.doctor import run_checks

    checks = run_checks(_settings(data_dir=data_dir))
    ok = all(c["ok"] or not c["required"] for c in checks)
    if as_json:
        _emit_json({"ok": ok, "checks": checks})
    else:
        table = Table("check", "", "detail")
        for c in checks:
            mark = (
                "[green]ok[/]" if c["ok"] else ("[red]FAIL[/]" if c["required"] else "[yellow]–[/]")
            )
            table.add_row(c["name"], mark, c["detail"])
        out.print(table)
    if not ok:
        raise typer.Exit(1)


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Listen address (default: $REFLECTOR_HOST or 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Listen port (default: $REFLECTOR_PORT or 8000).")
    ] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Start runs from Daily.co webhooks; stream a transcript's events over WebSocket."""
    import logging

    from reflector_cli.server import serve as run_server

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    run_server(_settings(data_dir=data_dir), host, port)


@app.command()
def poll(
    once: Annotated[bool, typer.Option("--once", help="One pass, then exit.")] = False,
    interval: Annotated[
        float | None,
        typer.Option(help="Seconds between passes (default: 180 with a webhook secret, else 15)."),
    ] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Start runs for finished Daily.co raw-tracks recordings found by listing them."""
    import logging

    from reflector_cli.poll import poll as run_poll

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    started = run_poll(_settings(data_dir=data_dir), once, interval)
    if once:
        out.print(
            f"started {len(started)} recording(s)" + (": " + ", ".join(started) if started else "")
        )


# --------------------------------------------------------------------------- entry point


def _fail(message: str) -> None:
    """One line on stderr, exit 1: never a traceback for a problem the user can fix."""
    one_line = " ".join(message.split())
    err.print(Text.assemble(("error: ", "bold red"), one_line), soft_wrap=True, highlight=False)
    sys.exit(1)


def main() -> None:
    try:
        app()
    except ReflectorError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        err.print("interrupted: finished stages are kept; run the same command to resume")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - last line of defence: one line, no traceback
        if os.environ.get("REFLECTOR_DEBUG"):
            raise
        _fail(f"unexpected {type(exc).__name__}: {exc} (set REFLECTOR_DEBUG=1 for a traceback)")


if __name__ == "__main__":
    main()
