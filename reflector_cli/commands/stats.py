"""`reflector stats`: per-provider health over a window, for watching a provider cutover."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.text import Text

from reflector_cli.commands.base import (
    DataDirOpt,
    JsonOpt,
    app,
    emit_json,
    open_store,
    out,
    settings_from,
)
from reflector_cli.commands.runs import parse_since
from reflector_cli.views.textview import Col, duration, fit_table, table_lines, wrap


@app.command()
def stats(
    since: Annotated[
        str, typer.Option("--since", help="Window: an age (24h, 7d, 30m) or an ISO date.")
    ] = "7d",
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Per provider: runs, failures by stage, retries, p50/p95 stage times, shadow agreement."""
    from reflector_cli.store.stats import provider_stats

    cutoff = parse_since(since)
    store = open_store(settings_from(data_dir=data_dir))
    doc = {"since": cutoff, "providers": provider_stats(store, cutoff)}
    if as_json:
        emit_json(doc)
        return
    if not doc["providers"]:
        out.print(f"no runs since {cutoff}", highlight=False)
    for name, p in doc["providers"].items():
        _print_provider(name, p)


def _say(line: str, style: str = "") -> None:
    out.print(Text(line, style=style), soft_wrap=True, highlight=False)


def _rate(p: dict[str, Any]) -> str:
    sh = p["shadow"]
    if not sh["comparisons"]:
        return "no comparisons"
    return f"{sh['agree']}/{sh['comparisons']} comparisons agree ({sh['rate']:.0%})"


def _print_provider(name: str, p: dict[str, Any]) -> None:
    width = out.width
    statuses = ", ".join(f"{n} {s}" for s, n in sorted(p["by_status"].items()))
    _say(f"{name}: {p['runs']} runs ({statuses}) · {p['retries']} retries", "bold")
    wall, per_min = p["wall_s"], p["wall_per_audio_min_s"]
    for line in wrap(
        f"wall p50 {duration(wall['p50'])}, p95 {duration(wall['p95'])}; per audio minute "
        f"p50 {duration(per_min['p50'])}, p95 {duration(per_min['p95'])} · shadow: {_rate(p)}",
        width,
        indent="  ",
    ):
        _say(line)
    if p["failures_by_stage"]:
        failed = ", ".join(f"{s} {n}" for s, n in sorted(p["failures_by_stage"].items()))
        for line in wrap(f"failures: {failed}", width, indent="  "):
            _say(line, "red")
    cols = [
        Col("stage"),
        Col("n", right=True),
        Col("p50", right=True),
        Col("p95", right=True),
        Col("p50/min", right=True),
        Col("p95/min", right=True),
    ]
    rows = [
        [
            stage,
            str(s["wall_s"]["n"]),
            duration(s["wall_s"]["p50"]),
            duration(s["wall_s"]["p95"]),
            duration(s["per_audio_min_s"]["p50"]),
            duration(s["per_audio_min_s"]["p95"]),
        ]
        for stage, s in p["stages"].items()
    ]
    for line in table_lines(*fit_table(cols, rows, width - 2)):
        _say("  " + line)
    _say("")
