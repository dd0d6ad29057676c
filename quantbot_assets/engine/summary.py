"""Summary metrics of one policy's trades (SEMANTICS "Summary")."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from quantbot_assets import schemas
from quantbot_assets.engine.bootstrap import bootstrap_intervals

SUMMARY_COLUMNS = schemas.SUMMARY_METRICS.names


def _mean(x: np.ndarray) -> float | None:
    return float(np.mean(x)) if len(x) else None


def _pct(x: np.ndarray, q: float) -> float | None:
    return float(np.percentile(x, q)) if len(x) else None  # linear interpolation


def summarize(
    trades: pd.DataFrame, calls_processed: int, calls_excluded: int, *, seed: int = 0
) -> pd.DataFrame:
    """One row with exactly the columns of schemas.SUMMARY_METRICS (None where undefined).

    `seed` seeds the bootstrap intervals (engine.bootstrap); callers derive it from content
    (`bootstrap_seed` of the parameter set, the policy and the day) so re-runs agree."""
    return summary_frame([summary_row(trades, calls_processed, calls_excluded, seed=seed)])


def summary_row(
    trades: pd.DataFrame, calls_processed: int, calls_excluded: int, *, seed: int = 0
) -> dict[str, Any]:
    """`summarize`'s row as a dict (many rows make one frame with `summary_frame`)."""
    missing = [
        c
        for c in (
            "realized_return_bps",
            "stop_out",
            "max_adverse_excursion_bps",
            "time_exposed_ms",
            "tail_capture",
        )
        if c not in trades.columns
    ]
    if missing:
        raise ValueError(f"trades: missing columns {missing}")
    n = len(trades)
    if calls_processed != calls_excluded + n:
        raise ValueError(
            f"calls_processed ({calls_processed}) must equal calls_excluded ({calls_excluded}) "
            f"+ trades ({n})"
        )
    r = trades["realized_return_bps"].to_numpy(dtype=np.float64)
    gains = r[r > 0].sum()
    losses = r[r < 0].sum()
    exposed = trades["time_exposed_ms"].to_numpy(dtype=np.float64)
    tail = trades["tail_capture"].to_numpy(dtype=np.float64, na_value=np.nan)
    tail = tail[~np.isnan(tail)]
    row = {
        "calls_processed": int(calls_processed),
        "calls_excluded": int(calls_excluded),
        "trades_count": n,
        "avg_return_bps": _mean(r),
        "median_return_bps": _pct(r, 50),
        "p25_return_bps": _pct(r, 25),
        "p75_return_bps": _pct(r, 75),
        "p90_return_bps": _pct(r, 90),
        "win_rate": float(np.mean(r > 0)) if n else None,
        "profit_factor": float(gains / abs(losses)) if (r < 0).any() else None,
        "stop_out_rate": float(np.mean(trades["stop_out"].to_numpy(dtype=bool))) if n else None,
        "avg_max_adverse_excursion_bps": _mean(
            trades["max_adverse_excursion_bps"].to_numpy(dtype=np.float64)
        ),
        "avg_time_exposed_ms": _mean(exposed),
        "median_time_exposed_ms": _pct(exposed, 50),
        "avg_tail_capture": _mean(tail),
        "median_tail_capture": _pct(tail, 50),
        # Intrabar ambiguity: the optimistic side of the range (the pessimistic side is the
        # return columns above) and how many trades it concerns; null for trades read from
        # files older than these columns.
        "ambiguous_trade_rate": None,
        "avg_optimistic_return_bps": None,
        "median_optimistic_return_bps": None,
        "window_incomplete_trades": None,
    }
    if "ambiguous" in trades.columns and n and not trades["ambiguous"].isna().any():
        row["ambiguous_trade_rate"] = float(np.mean(trades["ambiguous"].to_numpy(dtype=bool)))
    if (
        "optimistic_return_bps" in trades.columns
        and not trades["optimistic_return_bps"].isna().any()
    ):
        opt = trades["optimistic_return_bps"].to_numpy(dtype=np.float64)
        row["avg_optimistic_return_bps"] = _mean(opt)
        row["median_optimistic_return_bps"] = _pct(opt, 50)
    if "window_complete" in trades.columns and not trades["window_complete"].isna().any():
        row["window_incomplete_trades"] = int(
            np.count_nonzero(~trades["window_complete"].to_numpy(dtype=bool))
        )
    ci = bootstrap_intervals(r, seed)[0]
    row.update(
        zip(schemas.INTERVAL_COLUMNS, (None if np.isnan(v) else float(v) for v in ci), strict=True)
    )
    return row


def summary_frame(rows: list[dict[str, Any]], extra: list[str] | None = None) -> pd.DataFrame:
    """Rows of `summary_row` (plus the `extra` columns they carry) as one typed frame."""
    out = pd.DataFrame(rows, columns=[*SUMMARY_COLUMNS, *(extra or [])])
    for col in ("calls_processed", "calls_excluded", "trades_count"):
        out[col] = out[col].astype(np.int64)
    for col in SUMMARY_COLUMNS[3:]:
        if col != "window_incomplete_trades":
            out[col] = out[col].astype(np.float64)
    out["window_incomplete_trades"] = out["window_incomplete_trades"].astype("Int64")
    return out
