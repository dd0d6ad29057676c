"""Short tables printed by the commands: callers of a path-only run, a policy's summary."""

from __future__ import annotations

import pandas as pd

from quantbot_assets.engine import summarize
from quantbot_assets.engine.threads import split_map


def caller_table(paths: pd.DataFrame, min_calls: int = 10) -> pd.DataFrame:
    """Per caller: calls entered, 2x/3x hit rates, median peak multiple and drawdown."""
    if paths.empty:
        return pd.DataFrame(
            columns=[
                "caller_name",
                "calls",
                "hit_rate_2x",
                "hit_rate_3x",
                "median_peak_multiple",
                "median_dd_bps",
            ]
        )
    grouped = paths.groupby("caller_name")
    table = pd.DataFrame(
        {
            "calls": grouped.size(),
            "hit_rate_2x": grouped["hit_2x"].mean(),
            "hit_rate_3x": grouped["hit_3x"].mean(),
            "median_peak_multiple": grouped["peak_multiple"].median(),
            "median_dd_bps": grouped["dd_bps"].median(),
        }
    ).reset_index()
    table = table[table["calls"] >= min_calls]
    return table.sort_values(["hit_rate_2x", "calls"], ascending=False, ignore_index=True)


def policy_summary(trades: pd.DataFrame, calls_processed: int, seed: int = 0) -> pd.DataFrame:
    """The SEMANTICS summary of all of a policy's trades over a range of days (`seed`: of the
    bootstrap intervals, from content, see engine.bootstrap)."""
    return summarize(
        trades,
        calls_processed=calls_processed,
        calls_excluded=calls_processed - len(trades),
        seed=seed,
    )


def policy_summaries(jobs: list[tuple[str, pd.DataFrame, int, int]]) -> list[pd.DataFrame]:
    """`policy_summary` of each (policy_id, trades, calls_processed, seed), with its
    `policy_id` column, in order. The bootstraps of a year of trades take about a second
    per policy, mostly in numpy's generator and a compiled kernel, which release the GIL:
    they run on the machine's cores."""

    def some(a: int, b: int) -> list[pd.DataFrame]:
        return [
            policy_summary(trades, calls, seed).assign(policy_id=policy_id)
            for policy_id, trades, calls, seed in jobs[a:b]
        ]

    return [frame for part in split_map(some, len(jobs), 1) for frame in part]
