"""`reflector replay`: re-execute a past run."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from reflector_cli.commands.base import (
    DataDirOpt,
    JsonOpt,
    app,
    emit_json,
    err,
    out,
    progress_enabled,
    settings_from,
)

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
    from reflector_cli.runs.replay import replay as do_replay
    from reflector_cli.views.display import LiveDisplay

    settings = settings_from(data_dir=data_dir)
    display = LiveDisplay(err) if progress_enabled(as_json) else None
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
        emit_json(doc)
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
