"""Small PNG charts for materialization metadata, as markdown images the Dagster UI shows.

The UI draws a `MetadataValue.md` entry in its "[Show Markdown]" dialog, base64
`data:image/png` images included (its markdown sanitizer allows them since dagster-io/dagster
PR 13443; the browser test opens the dialog and checks the image was decoded). Charts are drawn with matplotlib's Agg canvas directly (no pyplot state, safe
in threads), about 480 x 300 px, a few tens of KB each.
"""

from __future__ import annotations

import base64
import io
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.axis import Axis
    from matplotlib.figure import Figure

WIDTH_IN, HEIGHT_IN, DPI = 6.0, 3.6, 80
LINTHRESH_BPS = 100.0  # linear within +-1 %, logarithmic beyond (returns reach +1e6 bps)
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


@dataclass(frozen=True)
class Picture:
    """One rendered chart: PNG bytes, the markdown that shows it, and what it cost."""

    png: bytes
    ms: float
    alt: str

    @property
    def markdown(self) -> str:
        data = base64.b64encode(self.png).decode("ascii")
        return f"![{self.alt}](data:image/png;base64,{data})"


def import_in_background() -> None:
    """Start importing matplotlib (a second or two in a fresh process) beside the step's
    other work, so the step's first chart does not wait for all of it. A later import of
    the same modules simply waits for this one. Not a daemon thread: the process never
    exits half-way through an import."""
    threading.Thread(target=_import_matplotlib, name="import-matplotlib").start()


def _import_matplotlib() -> None:
    from matplotlib import figure  # noqa: F401
    from matplotlib.backends import backend_agg  # noqa: F401


def _figure() -> Figure:
    # imported here: the code location loads without matplotlib until a chart is drawn
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
    FigureCanvasAgg(fig)
    # fixed margins: tight_layout costs a full extra draw
    fig.subplots_adjust(left=0.13, right=0.97, bottom=0.15, top=0.9)
    return fig


def _render(fig: Figure, alt: str, started: float) -> Picture:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return Picture(buffer.getvalue(), round((time.perf_counter() - started) * 1000, 1), alt)


def _bps_label(value: float, _position: object = None) -> str:
    """Tick labels in plain text (-1k, 100, 10k, 1M): matplotlib's 10^x labels go through its
    mathtext parser, whose first use in a process costs about a second."""
    size = abs(value)
    for limit, suffix in ((1e6, "M"), (1e3, "k")):
        if size >= limit:
            return f"{value / limit:g}{suffix}"
    return f"{value:g}"


def _symlog_axis(axis: Axis) -> None:
    from matplotlib.ticker import FuncFormatter

    axis.set_major_formatter(FuncFormatter(_bps_label))


def _symlog_edges(values: np.ndarray, bins: int) -> np.ndarray:
    """Bin edges equally spaced on the symmetric log scale the axis uses."""

    def forward(x: np.ndarray) -> np.ndarray:
        return np.sign(x) * np.log10(1 + np.abs(x) / LINTHRESH_BPS)

    def inverse(t: np.ndarray) -> np.ndarray:
        return np.sign(t) * LINTHRESH_BPS * (10 ** np.abs(t) - 1)

    lo, hi = forward(np.array([values.min(), values.max()]))
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    return inverse(np.linspace(lo, hi, bins + 1))


def return_distribution(
    returns: pd.Series, groups: pd.Series | None = None, title: str = "", bins: int = 40
) -> Picture:
    """Histogram of realized returns (bps) on a symmetric log x axis, one outline per group
    (e.g. policy; the six largest groups)."""
    started = time.perf_counter()
    fig = _figure()
    ax = fig.add_subplot()
    values = pd.to_numeric(returns, errors="coerce").to_numpy(dtype=float)
    keep = np.isfinite(values)
    if not keep.any():
        ax.text(0.5, 0.5, "no trades", ha="center", va="center", transform=ax.transAxes)
        return _render(fig, title or "return distribution", started)
    edges = _symlog_edges(values[keep], bins)
    labels = (
        pd.Series("trades", index=returns.index)
        if groups is None
        else groups.astype(str).reset_index(drop=True)
    )
    labels = labels.reset_index(drop=True)
    top = labels[keep].value_counts().index[: len(COLORS)]
    for color, name in zip(COLORS, top, strict=False):
        mine = values[keep & (labels == name).to_numpy()]
        ax.hist(
            mine, bins=edges.tolist(), histtype="step", linewidth=1.4, color=color, label=f"{name}"
        )
    ax.set_xscale("symlog", linthresh=LINTHRESH_BPS)
    _symlog_axis(ax.xaxis)
    ax.axvline(0, color="0.5", linewidth=0.8)
    ax.set_xlabel("realized return (bps, symmetric log)")
    ax.set_ylabel("trades")
    ax.set_title(title or "return distribution", fontsize=10)
    ax.legend(fontsize=7, frameon=False)
    return _render(fig, title or "return distribution", started)


def frontier_scatter(rows: pd.DataFrame, caller: str = "__all__", title: str = "") -> Picture:
    """Objective score against stop-out rate for one caller's grid: constrained-out policies
    grey, eligible blue, the Pareto set red and joined."""
    started = time.perf_counter()
    fig = _figure()
    ax = fig.add_subplot()
    mine = rows[rows["caller_name"] == caller]
    ok = mine["meets_constraints"].astype(bool)
    pareto = mine["pareto"].astype(bool)
    ax.scatter(
        mine.loc[~ok, "stop_out_rate"],
        mine.loc[~ok, "objective_score"],
        s=14,
        color="0.7",
        label="fails constraints",
    )
    ax.scatter(
        mine.loc[ok & ~pareto, "stop_out_rate"],
        mine.loc[ok & ~pareto, "objective_score"],
        s=16,
        color=COLORS[0],
        label="meets constraints",
    )
    front = mine[pareto].sort_values("stop_out_rate")
    ax.plot(
        front["stop_out_rate"],
        front["objective_score"],
        "o-",
        color=COLORS[3],
        markersize=5,
        linewidth=1,
        label="Pareto set",
    )
    for row in front.head(4).itertuples():
        ax.annotate(str(row.policy_id), (row.stop_out_rate, row.objective_score), fontsize=6)
    ax.set_xlabel("stop-out rate")
    ax.set_ylabel("objective score")
    ax.set_title(title or f"frontier of {caller}", fontsize=10)
    ax.legend(fontsize=7, frameon=False)
    return _render(fig, title or f"frontier of {caller}", started)


def in_vs_out_of_sample(pooled: pd.DataFrame, title: str = "") -> Picture:
    """Per caller, the pooled in-sample score (x) against the out-of-sample one (y); callers
    that hold up green, others red; the diagonal is 'no loss out of sample'."""
    started = time.perf_counter()
    fig = _figure()
    ax = fig.add_subplot()
    shown = pooled.dropna(subset=["is_score", "oos_score"])
    held = shown["holds_up"].fillna(False).astype(bool)
    for mask, color, label in ((held, COLORS[2], "holds up"), (~held, COLORS[3], "does not")):
        part = shown[mask]
        size = 12 + 60 * np.sqrt(part["oos_trades"] / max(1, shown["oos_trades"].max()))
        ax.scatter(part["is_score"], part["oos_score"], s=size, color=color, alpha=0.8, label=label)
    everything = pd.concat([shown["is_score"], shown["oos_score"]])
    if len(everything):
        lo, hi = float(everything.min()), float(everything.max())
        ax.plot([lo, hi], [lo, hi], color="0.6", linewidth=0.8, linestyle="--")
        if max(abs(lo), abs(hi)) > 10 * LINTHRESH_BPS:  # scores in bps spread over decades
            ax.set_xscale("symlog", linthresh=LINTHRESH_BPS)
            ax.set_yscale("symlog", linthresh=LINTHRESH_BPS)
            _symlog_axis(ax.xaxis)
            _symlog_axis(ax.yaxis)
    ax.axhline(0, color="0.8", linewidth=0.8)
    # name the callers with the most out-of-sample trades and the largest gaps
    named = pd.concat(
        [
            shown.nlargest(3, "oos_trades"),
            shown.assign(_gap=(shown["oos_score"] - shown["is_score"]).abs()).nlargest(3, "_gap"),
        ]
    ).drop_duplicates("caller_name")
    for row in named.itertuples():
        ax.annotate(str(row.caller_name), (row.is_score, row.oos_score), fontsize=7)
    ax.set_xlabel("in-sample score (pooled train days)")
    ax.set_ylabel("out-of-sample score (pooled test days)")
    ax.set_title(title or "walk-forward: in sample vs out of sample", fontsize=10)
    ax.legend(fontsize=7, frameon=False)
    return _render(fig, title or "in sample vs out of sample", started)


def total_ms(pictures: Sequence[Picture]) -> float:
    return round(sum(p.ms for p in pictures), 1)
