"""Plain-text building blocks: fitted tables never cut cells, bars, sparklines, ticks."""

from __future__ import annotations

from reflector_cli.views.textview import (
    Col,
    bar,
    duration,
    fit_table,
    sparkline,
    table_lines,
    ticks,
    wrap,
)

COLS = [Col("id"), Col("status"), Col("took", right=True), Col("extra", optional=True)]
ROWS = [["r-0123456789ab", "ended", "42s", "x" * 30], ["r-ffffffffffff", "error", "1m05s", ""]]


def test_fit_table_drops_optional_columns_before_cutting_anything() -> None:
    wide_cols, wide_rows = fit_table(COLS, ROWS, 120)
    assert [c.header for c in wide_cols] == ["id", "status", "took", "extra"]
    cols, rows = fit_table(COLS, ROWS, 40)
    assert [c.header for c in cols] == ["id", "status", "took"]
    lines = table_lines(cols, rows)
    assert all(len(line) <= 40 for line in lines)
    assert lines[1].startswith("r-0123456789ab  ended") and lines[1].endswith("  42s")
    assert lines[2].endswith("1m05s")  # right-aligned column


def test_wrap_indents_every_line_and_fits() -> None:
    lines = wrap("word " * 40, 30, indent="    ")
    assert all(len(x) <= 30 and x.startswith("    ") for x in lines) and len(lines) > 3


def test_duration_is_short_and_says_unknown() -> None:
    assert [duration(x) for x in (None, 0.44, 12.4, 185, 3720)] == [
        "—",
        "0.4s",
        "12s",
        "3m05s",
        "1h02m",
    ]


def test_bar_has_half_cell_resolution_and_clamps() -> None:
    assert bar(1.0, 10) == "█" * 10
    assert bar(0.25, 10) == "██▌"
    assert bar(0.0, 10) == "" and bar(3.0, 4) == "████"


def test_sparkline_keeps_slice_maxima_and_blanks_only_silence() -> None:
    peaks = [0.0] * 10 + [0.01] * 10 + [1.0] * 10 + [0.5] * 10
    line = sparkline(peaks, 4)
    assert line == " ▁█▄" and len(sparkline(peaks, 80)) == 80
    assert sparkline([], 10) == ""


def test_ticks_mark_start_columns() -> None:
    assert ticks([0.0, 50.0, 99.9], 100.0, 10) == "^    ^   ^"
    assert ticks([5.0], 0.0, 10) == ""
