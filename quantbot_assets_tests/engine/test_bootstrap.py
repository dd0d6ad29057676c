"""Bootstrap intervals (docs/semantics.md "Intervals"): the vectorised computation equals a
direct resampling loop with the same seed, bit for bit; seeds come from content; fewer than
2 trades give no interval; summary and frontier rows carry the same intervals for the same
trades and seed."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from quantbot_assets import schemas
from quantbot_assets.engine import search_frontier, simulate_policy, summarize
from quantbot_assets.engine.bootstrap import bootstrap_intervals, bootstrap_seed
from quantbot_assets_tests.engine.test_frontier import GRID, M, market
from quantbot_assets_tests.engine.test_summary_cases import trades_frame


def slow_intervals(values, seed: int, resamples: int = 1000, wins=None) -> list[float]:
    """The definition, one resample at a time: sort the sample ascending, draw n positions
    with replacement per resample from default_rng(seed), take the median (linear) and the
    share of wins, then the 5th and 95th percentiles (linear) of each statistic."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="stable")
    xs = values[order]
    ws = (values > 0)[order] if wins is None else np.asarray(wins, dtype=bool)[order]
    rng = np.random.default_rng(seed)
    medians, rates = [], []
    for _ in range(resamples):
        pick = rng.integers(0, len(xs), size=len(xs))
        medians.append(np.percentile(xs[pick], 50))
        rates.append(np.mean(ws[pick]))
    return [*np.percentile(medians, [5, 95]), *np.percentile(rates, [5, 95])]


def fat_tailed(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.round(rng.standard_t(2, n) * 800.0, 1)  # ties, as real returns have
    x[: n // 5] = 0.0  # a zero return is not a win
    return rng.permutation(x)


@pytest.mark.parametrize("n", [2, 3, 4, 7, 20, 61, 250])
def test_intervals_equal_a_direct_resampling_loop_with_the_same_seed(n: int) -> None:
    x = fat_tailed(n, n)
    seed = bootstrap_seed("test", n)
    got = bootstrap_intervals(x, seed)[0]
    assert got.tolist() == slow_intervals(x, seed)  # exactly, not approximately
    assert got[0] <= np.percentile(x, 50) <= got[1] or n < 5


def test_a_block_of_samples_gets_each_sample_s_own_interval() -> None:
    # The frontier bootstraps every policy of a caller in one block sharing one draw.
    block = np.stack([fat_tailed(40, s) for s in range(6)])
    got = bootstrap_intervals(block, 99)
    for row, x in zip(got, block, strict=True):
        assert row.tolist() == slow_intervals(x, 99)


def test_wins_that_are_not_the_positive_values() -> None:
    # The caller leaderboard's "win" is a 2x hit, not a positive value.
    x = fat_tailed(30, 5)
    wins = np.arange(30) % 3 == 0
    got = bootstrap_intervals(x, 7, wins=wins)[0]
    assert got.tolist() == slow_intervals(x, 7, wins=wins)


def test_row_order_does_not_change_the_interval() -> None:
    x = fat_tailed(50, 1)
    shuffled = np.random.default_rng(0).permutation(x)
    assert bootstrap_intervals(x, 3).tolist() == bootstrap_intervals(shuffled, 3).tolist()


def test_zero_or_one_trade_has_no_interval() -> None:
    assert np.isnan(bootstrap_intervals(np.array([]), 1)).all()
    assert np.isnan(bootstrap_intervals(np.array([250.0]), 1)).all()
    for returns in ([], [250.0]):
        row = summarize(trades_frame(returns), len(returns), 0, seed=1).iloc[0]
        assert row[list(schemas.INTERVAL_COLUMNS)].isna().all()


def test_seed_is_sha256_of_the_parts_as_json() -> None:
    parts = ("summary", "abc123", "fixed-stop-5pct", "2024-01-03")
    digest = hashlib.sha256(json.dumps(list(parts), separators=(",", ":")).encode()).digest()
    assert bootstrap_seed(*parts) == int.from_bytes(digest[:8], "little")
    assert bootstrap_seed(*parts) != bootstrap_seed("summary", "abc123", "other", "2024-01-03")


def test_summary_intervals_come_from_its_seed() -> None:
    returns = (fat_tailed(200, 11) + 0.01 * np.arange(200)).tolist()
    row = summarize(trades_frame(returns), 200, 0, seed=5).iloc[0]
    want = slow_intervals(returns, 5)
    assert [row[c] for c in schemas.INTERVAL_COLUMNS] == want
    assert row["median_return_lo_bps"] <= row["median_return_bps"] <= row["median_return_hi_bps"]
    assert row["win_rate_lo"] <= row["win_rate"] <= row["win_rate_hi"]
    again = summarize(trades_frame(returns[::-1]), 200, 0, seed=5).iloc[0]
    assert [again[c] for c in schemas.INTERVAL_COLUMNS] == want
    other = summarize(trades_frame(returns), 200, 0, seed=6).iloc[0]
    assert [other[c] for c in schemas.INTERVAL_COLUMNS] != want


def test_frontier_rows_carry_the_interval_of_their_trades() -> None:
    candles, alerts = market(4)
    fr = search_frontier(alerts, candles, GRID, min_trades=1, horizon_ms=150 * M, seed_key="k")
    for pid, pol in list(GRID.items())[:4]:
        trades = simulate_policy(alerts, candles, pol, policy_id=pid, horizon_ms=150 * M)
        for caller in ("__all__", "alice", "bob"):
            t = trades if caller == "__all__" else trades[trades["caller_name"] == caller]
            row = fr[(fr["policy_id"] == pid) & (fr["caller_name"] == caller)].iloc[0]
            seed = bootstrap_seed("frontier", "k", caller)
            want = slow_intervals(t["realized_return_bps"].to_numpy(), seed)
            assert [row[c] for c in schemas.INTERVAL_COLUMNS] == want, (pid, caller)
    # the same inputs give the same intervals; another seed key other ones
    again = search_frontier(alerts, candles, GRID, min_trades=1, horizon_ms=150 * M, seed_key="k")
    cols = list(schemas.INTERVAL_COLUMNS)
    pd.testing.assert_frame_equal(fr[cols], again[cols])
    other = search_frontier(alerts, candles, GRID, min_trades=1, horizon_ms=150 * M, seed_key="j")
    assert not fr[cols].equals(other[cols])
