"""Caller and policy leaderboards computed from the golden exports.

Callers come from `paths.parquet` (the truth layer), policies from
`trades.parquet`. Medians interpolate linearly (numpy's default, as in
docs/semantics.md). Rows of different parameter sets (interval, horizon, fees...)
are never pooled: each board row belongs to one set, named in `parameters`.
Time to 2x is `t_2x_ms - alert_ts_ms` (from the call, what a
follower of the caller experiences), over the calls that reached 2x.

Both boards carry 90 % percentile-bootstrap intervals (engine.bootstrap, seeded from the
board, the parameter set and the row's name) and rank by the lower bound of the interval
of their headline figure, so a small lucky sample no longer tops the table: policies by
`median_return_lo_bps`, callers by `hit_2x_rate_lo` (in the truth layer a call's "win" is
reaching 2x and its return is its peak; there is no realized return before a policy).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from quantbot_assets.catalog.exports import PARAMETER_SETS_FILE, export_path
from quantbot_assets.engine.bootstrap import (
    MEDIAN_HI,
    MEDIAN_LO,
    WIN_HI,
    WIN_LO,
    bootstrap_intervals,
    bootstrap_seed,
)

CALLER_COLUMNS = [
    "parameters",
    "caller_name",
    "calls",
    "hit_2x_rate",
    "hit_2x_rate_lo",
    "hit_2x_rate_hi",
    "hit_3x_rate",
    "hit_4x_rate",
    "median_peak_multiple",
    "median_peak_multiple_lo",
    "median_peak_multiple_hi",
    "median_dd_bps",
    "median_time_to_2x_min",
]
POLICY_COLUMNS = [
    "parameters",
    "policy_id",
    "trades",
    "avg_return_bps",
    "median_return_bps",
    "median_return_lo_bps",
    "median_return_hi_bps",
    "win_rate",
    "win_rate_lo",
    "win_rate_hi",
    "stop_out_rate",
    "avg_tail_capture",
    "median_tail_capture",
]


def _read_export(exports_dir: Path, artifact_type: str, columns: list[str]) -> pd.DataFrame | None:
    path = export_path(exports_dir, artifact_type)
    if not path.exists():
        return None
    schema = pq.read_schema(path)
    wanted = [*columns, "params_hash"] if "params_hash" in schema.names else columns
    frame = pq.read_table(path, columns=wanted).to_pandas()
    if "params_hash" not in frame.columns:
        frame["params_hash"] = ""
    frame["parameters"] = frame["params_hash"].map(_parameter_labels(exports_dir)).fillna("")
    return frame


def _parameter_labels(exports_dir: Path) -> dict[str, str]:
    """params_hash -> a short label such as `5m 48h fee 10 slip 0` (rows never mix sets)."""
    path = Path(exports_dir) / PARAMETER_SETS_FILE
    if not path.exists():
        return {}
    labels = {}
    for row in pq.read_table(path).to_pylist():
        values = json.loads(row["parameters_json"])
        parts = [str(values.get("interval", "")), _hours(values.get("horizon_ms"))]
        if values.get("entry_delay_ms"):
            parts.append(f"delay {values['entry_delay_ms'] / 1000:g}s")
        if row["layer"] == "policy":
            parts += [
                f"fee {values.get('fee_bps', 0):g}",
                f"slip {values.get('slippage_bps', 0):g}",
            ]
        labels[row["params_hash"]] = " ".join(p for p in parts if p)
    return labels


def _hours(ms: object) -> str:
    return f"{float(ms) / 3_600_000:g}h" if isinstance(ms, int | float) else ""


def _intervals(
    frame: pd.DataFrame, name: str, value: str, win: str, board: str, keys: pd.DataFrame
) -> pd.DataFrame:
    """Bootstrap intervals of the median of `value` and the share of `win` for each
    (parameters, name) row of `keys`, seeded by (board, parameters, name)."""
    groups = dict(tuple(frame.groupby(["parameters", name], sort=False)))
    rows = []
    for parameters, label in zip(keys["parameters"], keys[name], strict=True):
        part = groups[(parameters, label)]
        rows.append(
            bootstrap_intervals(
                part[value].to_numpy(dtype=np.float64),
                bootstrap_seed(board, parameters, label),
                wins=part[win].to_numpy(dtype=bool),
            )[0]
        )
    return pd.DataFrame(np.array(rows).reshape(-1, 4), index=keys.index)


def caller_leaderboard(exports_dir: Path, min_calls: int = 20) -> pd.DataFrame:
    """One row per caller with at least `min_calls` calls, highest lower bound of the 2x hit
    rate's interval first."""
    paths = _read_export(
        exports_dir,
        "paths",
        [
            "caller_name",
            "hit_2x",
            "hit_3x",
            "hit_4x",
            "peak_multiple",
            "dd_bps",
            "alert_ts_ms",
            "t_2x_ms",
        ],
    )
    if paths is None or paths.empty:
        return pd.DataFrame(columns=CALLER_COLUMNS)
    paths["time_to_2x_min"] = (paths["t_2x_ms"] - paths["alert_ts_ms"]) / 60_000
    grouped = paths.groupby(["parameters", "caller_name"], sort=False)
    board = pd.DataFrame(
        {
            "calls": grouped.size(),
            "hit_2x_rate": grouped["hit_2x"].mean(),
            "hit_3x_rate": grouped["hit_3x"].mean(),
            "hit_4x_rate": grouped["hit_4x"].mean(),
            "median_peak_multiple": grouped["peak_multiple"].median(),
            "median_dd_bps": grouped["dd_bps"].median(),
            "median_time_to_2x_min": grouped["time_to_2x_min"].median(),
        }
    ).reset_index()
    board = board[board["calls"] >= min_calls]
    ci = _intervals(paths, "caller_name", "peak_multiple", "hit_2x", "caller_leaderboard", board)
    board["hit_2x_rate_lo"] = ci[WIN_LO]
    board["hit_2x_rate_hi"] = ci[WIN_HI]
    board["median_peak_multiple_lo"] = ci[MEDIAN_LO]
    board["median_peak_multiple_hi"] = ci[MEDIAN_HI]
    board = board.sort_values(
        ["parameters", "hit_2x_rate_lo", "hit_2x_rate", "calls", "caller_name"],
        ascending=[True, False, False, False, True],
        na_position="last",
    )
    return board[CALLER_COLUMNS].reset_index(drop=True)


def policy_leaderboard(exports_dir: Path, min_trades: int = 20) -> pd.DataFrame:
    """One row per policy with at least `min_trades` trades, highest lower bound of the
    median return's interval first."""
    trades = _read_export(
        exports_dir, "trades", ["policy_id", "realized_return_bps", "stop_out", "tail_capture"]
    )
    if trades is None or trades.empty:
        return pd.DataFrame(columns=POLICY_COLUMNS)
    trades["win"] = trades["realized_return_bps"] > 0
    grouped = trades.groupby(["parameters", "policy_id"], sort=False)
    board = pd.DataFrame(
        {
            "trades": grouped.size(),
            "avg_return_bps": grouped["realized_return_bps"].mean(),
            "median_return_bps": grouped["realized_return_bps"].median(),
            "win_rate": grouped["win"].mean(),
            "stop_out_rate": grouped["stop_out"].mean(),
            "avg_tail_capture": grouped["tail_capture"].mean(),
            "median_tail_capture": grouped["tail_capture"].median(),
        }
    ).reset_index()
    board = board[board["trades"] >= min_trades]
    ci = _intervals(trades, "policy_id", "realized_return_bps", "win", "policy_leaderboard", board)
    for column, i in (
        ("median_return_lo_bps", MEDIAN_LO),
        ("median_return_hi_bps", MEDIAN_HI),
        ("win_rate_lo", WIN_LO),
        ("win_rate_hi", WIN_HI),
    ):
        board[column] = ci[i]
    board = board.sort_values(
        ["parameters", "median_return_lo_bps", "median_return_bps", "trades", "policy_id"],
        ascending=[True, False, False, False, True],
        na_position="last",
    )
    return board[POLICY_COLUMNS].reset_index(drop=True)
