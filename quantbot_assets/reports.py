"""Markdown shown in materialization metadata: tables, histograms, counts."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    if isinstance(value, float | np.floating):
        number = float(value)
        return f"{number:.4g}" if abs(number) < 1_000 else f"{number:,.0f}"
    return str(value).replace("|", "\\|")


def markdown_table(frame: pd.DataFrame, max_rows: int = 50) -> str:
    """A GitHub-style markdown table (no optional `tabulate` dependency)."""
    if frame.empty:
        return "_no rows_"
    shown = frame.head(max_rows)
    lines = [
        "| " + " | ".join(str(c) for c in shown.columns) + " |",
        "| " + " | ".join("---" for _ in shown.columns) + " |",
    ]
    for row in shown.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    if len(frame) > max_rows:
        lines.append(f"\n_{len(frame) - max_rows} more rows_")
    return "\n".join(lines)


def transpose_row(frame: pd.DataFrame) -> pd.DataFrame:
    """A one-row frame as a two-column metric/value table."""
    if frame.empty:
        return pd.DataFrame({"metric": [], "value": []})
    row = frame.iloc[0]
    return pd.DataFrame({"metric": list(frame.columns), "value": [row[c] for c in frame.columns]})


def histogram_markdown(
    values: pd.Series, bins: int = 12, width: int = 30, unit: str = "bps"
) -> str:
    """A text histogram of `values` (bar of '█' per bin) inside a code block."""
    data = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=float)
    if data.size == 0:
        return "_no values_"
    lo, hi = np.percentile(data, [1, 99]) if data.size > 20 else (data.min(), data.max())
    if hi <= lo:
        hi = lo + 1.0
    clipped = np.clip(data, lo, hi)
    counts, edges = np.histogram(clipped, bins=bins, range=(lo, hi))
    peak = counts.max() or 1
    lines = []
    for count, left, right in zip(counts, edges[:-1], edges[1:], strict=True):
        bar = "█" * max(1 if count else 0, round(width * count / peak))
        lines.append(f"{left:>10,.0f} .. {right:>10,.0f} {unit} | {bar} {count}")
    note = (
        "(values beyond the 1st/99th percentile are counted in the end bins)"
        if data.size > 20
        else ""
    )
    return "```\n" + "\n".join(lines) + "\n```\n" + note


def counts_table(values: pd.Series, label: str) -> str:
    counts = values.value_counts(dropna=False)
    frame = pd.DataFrame({label: counts.index.astype(str), "count": counts.to_numpy()})
    frame["share"] = frame["count"] / max(1, int(frame["count"].sum()))
    return markdown_table(frame)
