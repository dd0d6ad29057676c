"""The searches' result tables: the frontier's best policies, the walk-forward verdicts.

Shown by the `frontier` and `walk_forward` assets' metadata and printed by
`quantbot backtest optimize` / `walk-forward`, from one definition.
"""

from __future__ import annotations

import pandas as pd

BEST_COLUMNS = [
    "rank",
    "policy_id",
    "trades_count",
    "median_return_bps",
    "median_return_lo_bps",
    "median_return_hi_bps",
    "avg_return_bps",
    "win_rate_lo",
    "win_rate_hi",
    "stop_out_rate",
    "pareto",
]


def best_overall(rows: pd.DataFrame) -> pd.DataFrame:
    """The frontier's ranked policies for all callers together, best first."""
    best = rows[(rows["caller_name"] == "__all__") & rows["meets_constraints"]]
    return best.sort_values(["month", "rank"] if "month" in best else "rank")


VERDICT_COLUMNS = [
    "caller_name",
    "folds",
    "is_trades",
    "is_score",
    "oos_trades",
    "oos_score",
    "oos_median_return_lo_bps",
    "oos_median_return_hi_bps",
    "baseline_oos_score",
    "gap",
]


def verdict_tables(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pooled rows of the callers whose out-of-sample result holds up, and of the others
    (with their verdict), best out-of-sample score first."""
    pooled = rows[rows["kind"] == "pooled"].sort_values("oos_score", ascending=False)
    held = pooled["holds_up"].fillna(False).astype(bool)
    scores = [
        "is_score",
        "oos_score",
        "oos_median_return_lo_bps",
        "oos_median_return_hi_bps",
        "baseline_oos_score",
        "gap",
    ]
    shown = pooled.copy()
    shown[scores] = shown[scores].round(6) + 0.0  # float noise and -0.0 shown as 0
    return shown[held][VERDICT_COLUMNS], shown[~held][[*VERDICT_COLUMNS, "verdict"]]
