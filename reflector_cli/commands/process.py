"""`reflector process`: run recordings through the pipeline (or plan, or submit)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from reflector_cli.commands.base import (
    DataDirOpt,
    JsonOpt,
    OnOff,
    OutputDirOpt,
    Provider,
    app,
    check_formats,
    emit_json,
    err,
    json_error,
    open_store,
    out,
    progress_enabled,
    settings_from,
)
from reflector_cli.core.config import Settings
from reflector_cli.core.errors import UserError, one_line
from reflector_cli.providers import registry
from reflector_cli.views.outputs import RenderContext, parse_formats, write_outputs

if TYPE_CHECKING:
    from reflector_cli.runs.process import ProcessResult

# --------------------------------------------------------------------------- process


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
        str | None,
        typer.Option(
            help="Whisper model: a name (tiny.en, small, large-v3…; see `reflector models list`)"
            " or a CTranslate2 model directory.",
            show_default="$REFLECTOR_MODEL or tiny.en, bundled",
        ),
    ] = None,
    language: Annotated[
        str | None,
        typer.Option(
            help="Spoken language code, or auto (detect per track).",
            show_default="the manifest's, else $REFLECTOR_LANGUAGE, else en",
        ),
    ] = None,
    llm: Annotated[
        str | None,
        typer.Option(
            help="LLM backend for topics/title/summary.",
            show_default="$REFLECTOR_LLM, anthropic with a key, else extractive",
        ),
    ] = None,
    compute_type: Annotated[
        str | None, typer.Option(help="int8, int8_float32, float32…", show_default="int8")
    ] = None,
    threads: Annotated[
        int | None, typer.Option(help="CPU threads per transcription.", show_default="1")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Stages run in parallel (local).", show_default="CPU count"),
    ] = None,
    parallel: Annotated[
        int | None,
        typer.Option(
            help="With several recordings: how many are in flight at once, pipelined over one "
            "shared worker pool ($REFLECTOR_PARALLEL).",
            show_default="half the workers, at least 2",
        ),
    ] = None,
    crosstalk: Annotated[
        OnOff | None,
        typer.Option(
            help="Drop words a microphone picked up from another participant.",
            show_default="$REFLECTOR_CROSSTALK or on",
        ),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(help="auto (CUDA if CTranslate2 sees a GPU), cpu, cuda ($REFLECTOR_DEVICE)."),
    ] = None,
    beam_size: Annotated[
        int | None,
        typer.Option(help="Whisper beam size, 1 = greedy (default 1; $REFLECTOR_BEAM_SIZE)."),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            help="Speech chunks decoded together; 1 = in sequence "
            "(default 1 on CPU, 8 on CUDA; $REFLECTOR_BATCH_SIZE).",
        ),
    ] = None,
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
    wait_for_worker: Annotated[
        float | None,
        typer.Option(
            "--wait-for-worker",
            metavar="SECONDS",
            help="Hatchet: wait this long for a worker of the namespace to appear "
            "[default: $REFLECTOR_WAIT_FOR_WORKER or 600].",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Validate the input and show tracks, plan and LLM cost estimate; store nothing.",
        ),
    ] = False,
    output_dir: OutputDirOpt = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            help="With --output-dir: formats to write, a comma list or all (see export).",
            show_default="all",
            callback=check_formats,
        ),
    ] = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Process recordings through every stage; finished work is reused unless --force."""
    from reflector_cli.runs.process import process_recording
    from reflector_cli.views.display import LiveDisplay

    settings = settings_from(
        data_dir=data_dir,
        model=model,
        language=language,
        llm=llm,
        compute_type=compute_type,
        cpu_threads=threads,
        device=device,
        beam_size=beam_size,
        batch_size=batch_size,
        workers=workers,
        parallel=parallel,
        wait_for_worker_s=wait_for_worker,
        crosstalk=None if crosstalk is None else crosstalk is OnOff.on,
    )
    formats = _formats_for(output_dir, fmt)
    if dry_run:
        from reflector_cli.runs.plan import dry_run_plan

        plans = [dry_run_plan(source, settings) for source in recordings]
        if as_json:
            emit_json(plans[0] if len(plans) == 1 else plans)
        else:
            for p in plans:
                _print_plan(p)
        return
    if no_wait:
        _submit_no_wait(recordings, settings, provider, force, not no_deliver, as_json)
        return
    report = _Report(settings, formats, output_dir, as_json)
    if len(recordings) > 1:
        from reflector_cli.commands.process_batch import process_batch

        process_batch(
            recordings,
            settings,
            provider=provider.value if provider else None,
            force=force,
            deliver=not no_deliver,
            shadow=shadow.value if shadow else None,
            report=report,
        )
    else:
        source = recordings[0]
        display = LiveDisplay(err) if progress_enabled(as_json) else None
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
        report.result(source, res)
    results, failed = report.docs, report.failed
    if as_json:
        emit_json(results[0] if len(results) == 1 else results)
    if failed:
        raise typer.Exit(1)


class _Report:
    """What the command prints for each recording's result, as each one finishes."""

    def __init__(
        self, settings: Settings, formats: list[str], output_dir: Path | None, as_json: bool
    ) -> None:
        self.settings, self.formats, self.output_dir, self.as_json = (
            settings,
            formats,
            output_dir,
            as_json,
        )
        self.docs: list[dict[str, Any]] = []
        self.failed = False
        self.taken: set[str] = set()  # file base names written by this call (same title, day)

    def result(self, source: str, res: ProcessResult) -> None:
        self.docs.append(res.view)
        if res.shadow:
            sh = res.shadow
            verdict = {True: "agrees", False: "DIFFERS", None: "failed"}[sh["agree"]]
            err.print(
                f"shadow {sh['provider']} run {sh['run_id']}: {verdict}"
                + (f" ({sh['error']})" if sh.get("error") else ""),
                markup=False,
            )
        if not res.ok:
            self.error(source, f"stage {res.error_stage} failed: {one_line(res.error)}")
            return
        if self.output_dir is not None:
            res.view["files"] = _write_files(
                self.settings, res.view, self.formats, self.output_dir, self.taken
            )
        if not self.as_json:
            _print_result(res.view, reused=res.reused, settings=self.settings)

    def refused(self, source: str, message: str) -> None:
        """A recording of several that never ran (bad input, lock held): the others go on."""
        self.docs.append({"source": source, **json_error(message)})
        self.error(source, message)

    def error(self, source: str, message: str) -> None:
        self.failed = True
        err.print(
            Text.assemble(("error: ", "bold red"), f"{source}: {message}"),
            soft_wrap=True,
            highlight=False,
        )


def _formats_for(output_dir: Path | None, fmt: str | None) -> list[str]:
    if output_dir is None:
        if fmt is not None:
            raise UserError("--format needs --output-dir DIR (or use `reflector export`)")
        return []
    return parse_formats(fmt or "all")


def _write_files(
    settings: Settings, view: dict[str, Any], formats: list[str], out_dir: Path, taken: set[str]
) -> list[str]:
    store = open_store(settings)
    try:
        ctx = RenderContext(settings=settings)
        paths = write_outputs(store, view["transcript_id"], formats, out_dir, ctx, taken)
    finally:
        store.close()
    return [str(p) for p in paths]


def _submit_no_wait(
    recordings: list[str],
    settings: Settings,
    provider: Provider | None,
    force: bool,
    deliver: bool,
    as_json: bool,
) -> None:
    submit = registry.spec(provider.value if provider else settings.provider).submit
    if submit is None:
        raise typer.BadParameter(f"--no-wait needs the {' or '.join(registry.ENGINES)} provider")
    runs = [
        {"source": src, "run_id": submit(src, settings, force=force, deliver=deliver)}
        for src in recordings
    ]
    if as_json:
        emit_json(runs[0] if len(runs) == 1 else runs)
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
    for path in view.get("files", []):
        t.add_row("wrote", path)
    t.add_row("next", f"reflector export {view['transcript_id']} --format md")
    err.print(t)
