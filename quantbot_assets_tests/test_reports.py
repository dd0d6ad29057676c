"""Markdown rendered into materialization metadata."""

from __future__ import annotations

import pandas as pd

from quantbot_assets.reports import counts_table, histogram_markdown, markdown_table, transpose_row


def test_markdown_table_escapes_pipes_and_blanks_missing_values() -> None:
    frame = pd.DataFrame({"name": ["a|b", "c"], "rate": [0.12345, float("nan")], "n": [3, 40]})
    assert markdown_table(frame).splitlines() == [
        "| name | rate | n |",
        "| --- | --- | --- |",
        "| a\\|b | 0.1235 | 3 |",
        "| c |  | 40 |",
    ]
    assert markdown_table(frame.iloc[:0]) == "_no rows_"
    assert "1 more rows" in markdown_table(frame, max_rows=1)


def test_histogram_counts_every_value_once() -> None:
    values = pd.Series([-500.0] * 7 + [100.0, 2_000.0, None])
    text = histogram_markdown(values, bins=4)
    counts = [int(line.rsplit(" ", 1)[1]) for line in text.splitlines() if "|" in line]
    assert sum(counts) == 9
    assert histogram_markdown(pd.Series([], dtype=float)) == "_no values_"


def test_counts_and_transpose() -> None:
    assert "| stop_loss | 2 | 0.6667 |" in counts_table(
        pd.Series(["stop_loss", "take_profit", "stop_loss"]), "exit_reason"
    )
    row = transpose_row(pd.DataFrame({"a": [1], "b": [2.5]}))
    assert list(row["metric"]) == ["a", "b"] and list(row["value"]) == [1, 2.5]
