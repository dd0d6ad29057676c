"""Charts for materialization metadata: valid, small PNGs inside markdown image data URIs."""

from __future__ import annotations

import base64
import re
import struct

import numpy as np
import pandas as pd

from quantbot_assets import pictures

MAX_PNG_BYTES = 60_000
DATA_URI = re.compile(r"^!\[[^\]]*\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)$")


def png_of(markdown: str) -> bytes:
    """The PNG inside a markdown image with a data URI (asserts that is what it is)."""
    match = DATA_URI.match(markdown)
    assert match, markdown[:80]
    png = base64.b64decode(match.group(1))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(png) < MAX_PNG_BYTES, len(png)
    return png


def png_size(png: bytes) -> tuple[int, int]:
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def test_return_distribution_on_a_symmetric_log_axis() -> None:
    rng = np.random.default_rng(0)
    returns = pd.Series(np.r_[rng.normal(-500, 300, 500), np.exp(rng.normal(8, 2, 200))])
    chart = pictures.return_distribution(returns, pd.Series(["a", "b"] * 350), title="t")
    assert png_size(png_of(chart.markdown)) == (480, 288)
    assert chart.ms > 0
    edges = pictures._symlog_edges(returns.to_numpy(), 40)
    widths = np.diff(edges)
    # bins widen away from zero: equal on the symlog axis, not in bps
    assert widths[-1] > 100 * widths[len(widths) // 2]
    assert png_of(pictures.return_distribution(pd.Series([], dtype=float)).markdown)


def test_frontier_and_walk_forward_charts() -> None:
    rows = pd.DataFrame(
        {
            "caller_name": ["__all__"] * 4 + ["bob"],
            "policy_id": ["a", "b", "c", "d", "a"],
            "stop_out_rate": [0.1, 0.3, 0.5, 0.9, 0.1],
            "objective_score": [10.0, 50.0, 40.0, 90.0, 5.0],
            "meets_constraints": [True, True, True, False, True],
            "pareto": [True, True, False, False, True],
        }
    )
    png_of(pictures.frontier_scatter(rows).markdown)
    pooled = pd.DataFrame(
        {
            "caller_name": ["__all__", "alice", "bob"],
            "is_score": [100.0, 5000.0, -300.0],
            "oos_score": [80.0, -2000.0, 10.0],
            "oos_trades": [100, 40, 60],
            "holds_up": pd.array([True, False, pd.NA], dtype="boolean"),
        }
    )
    png_of(pictures.in_vs_out_of_sample(pooled).markdown)
