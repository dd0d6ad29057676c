"""lookahead_probe: a clean engine passes (no changed cell), a deliberately leaky function is
caught, and the load range / window_complete helpers say what they promise."""

from __future__ import annotations

import dataclasses
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import pytest

from quantbot_assets.engine import (
    WINDOW_COMPLETE_PROBE_MS,
    PreparedCandles,
    candle_load_range,
    compute_paths,
    lookahead_probe,
    simulate_policy,
)
from quantbot_assets.engine.probe import PROBE_COLUMNS
from quantbot_assets_tests.engine.conftest import M
from quantbot_assets_tests.engine.test_reference_compare import POLICIES, generate

HORIZON = 90 * M


@cache
def market() -> tuple[pd.DataFrame, pd.DataFrame]:
    """About 400 calls on 50 mints of clean 1m bars (several calls per mint)."""
    return generate(4242, n_mints=50, calls_per_mint=8, corrupt=False)


@pytest.mark.parametrize(
    ("interval", "policy_id", "drill"),
    [
        ("1m", "fixed", False),
        ("1m", "ladder", False),
        ("1m", "combo_trails", False),
        ("5m", "fixed", True),
        ("5m", "ladder_odd", True),
        ("15m", "time", True),
    ],
)
def test_clean_engine_passes(interval: str, policy_id: str, drill: bool) -> None:
    alerts, candles = market()
    assert len(alerts) >= 200
    found = lookahead_probe(
        alerts,
        candles,
        POLICIES[policy_id],
        interval=interval,
        horizon_ms=HORIZON,
        entry_delay_ms=30_000,
        fee_bps=10.0,
        slippage_bps=20.0,
        fine=candles if drill else None,
        seed=7,
    )
    assert list(found.columns) == PROBE_COLUMNS
    assert found.empty, found.head(10)


def test_paths_only_probe_is_clean_on_malformed_bars() -> None:
    alerts, candles = generate(99, n_mints=30, calls_per_mint=10, corrupt=True)
    found = lookahead_probe(alerts, candles, horizon_ms=HORIZON, sample_size=250, seed=1)
    assert found.empty, found.head(10)


def test_a_leaky_truth_function_is_caught() -> None:
    # Reads an hour past the horizon: the peak, drawdown and hits see bars after W.
    def leaky_paths(alerts: pd.DataFrame, candles: Any, **kw: Any) -> Any:
        return compute_paths(alerts, candles, **{**kw, "horizon_ms": kw["horizon_ms"] + 60 * M})

    alerts, candles = market()
    found = lookahead_probe(alerts, candles, horizon_ms=HORIZON, paths_fn=leaky_paths)
    assert not found.empty
    assert set(found["layer"]) == {"paths"}
    assert {"randomized", "removed"} <= set(found["variant"])
    assert {"peak_multiple", "bars"} <= set(found["column"])


def test_a_leaky_policy_function_is_caught() -> None:
    # The classic bug: each bar's close is the next bar's close (a bar "knows" how the next
    # one ends). An end-of-window exit then reads a bar after its exit bar.
    def leaky_trades(alerts: pd.DataFrame, candles: PreparedCandles, policy: Any, **kw: Any):
        close = candles.close.copy()
        close[:-1] = candles.close[1:]
        return simulate_policy(alerts, dataclasses.replace(candles, close=close), policy, **kw)

    alerts, candles = market()
    found = lookahead_probe(
        alerts,
        candles,
        POLICIES["tight"],
        horizon_ms=HORIZON,
        trades_fn=leaky_trades,
    )
    leaks = found[found["layer"] == "trades"]
    assert not leaks.empty
    assert "exit_px" in set(leaks["column"])


def test_sample_is_seeded_and_bounded() -> None:
    alerts, candles = market()
    calls: list[set[str]] = []

    def recording_paths(alerts_: pd.DataFrame, candles_: Any, **kw: Any) -> Any:
        calls.append(set(alerts_["call_id"]))
        return compute_paths(alerts_, candles_, **kw)

    for _ in range(2):
        lookahead_probe(
            alerts, candles, horizon_ms=HORIZON, sample_size=50, seed=3, paths_fn=recording_paths
        )
    assert len(calls[0]) == 50 and calls[0] == calls[3]
    lookahead_probe(alerts.head(20), candles, horizon_ms=HORIZON, paths_fn=recording_paths)
    assert calls[-1] == set(alerts.head(20)["call_id"])  # all calls when there are fewer


def test_candle_load_range() -> None:
    assert candle_load_range([], interval_ms=M, horizon_ms=HORIZON) is None
    start, end = candle_load_range(
        np.array([5_000_000, 1_000_000, 3_000_000]),
        interval_ms=M,
        horizon_ms=HORIZON,
        entry_delay_ms=30_000,
    )
    assert start == (1_000_000 + 30_000) // M * M  # whole buckets
    last = 5_000_000 + HORIZON + WINDOW_COMPLETE_PROBE_MS
    assert end == -(-last // M) * M  # whole buckets
    # the probe is at least one bar of the run's interval
    _, end_4h = candle_load_range([0], interval_ms=4 * 3_600_000, horizon_ms=HORIZON)
    four_h = 4 * 3_600_000
    assert end_4h == -(-(HORIZON + four_h) // four_h) * four_h


def test_results_on_the_load_range_equal_results_on_everything() -> None:
    # Loading only [start, end) changes nothing (window_complete included): the loader may
    # rely on candle_load_range.
    alerts, candles = market()
    start, end = candle_load_range(
        alerts["alert_ts_ms"].to_numpy(), interval_ms=5 * M, horizon_ms=HORIZON, entry_delay_ms=0
    )
    cut = candles[(candles["ts_ms"] >= start) & (candles["ts_ms"] < end)]
    kw: dict[str, Any] = {"interval": "5m", "horizon_ms": HORIZON}
    full, _ = compute_paths(alerts, candles, **kw)
    part, _ = compute_paths(alerts, cut, **kw)
    pd.testing.assert_frame_equal(full, part)
    a = simulate_policy(alerts, candles, POLICIES["ladder"], policy_id="l", fine=candles, **kw)
    b = simulate_policy(alerts, cut, POLICIES["ladder"], policy_id="l", fine=cut, **kw)
    pd.testing.assert_frame_equal(a, b)


def test_isolated_series_hand_case() -> None:
    """Each call gets a private copy of [first, last) of its series; bars at or after its cut
    are dropped ("removed") or redrawn around the last finite close before the cut."""
    from quantbot_assets.engine.probe import _isolated

    ts = np.array([0, 60, 120, 180, 240, 0, 60], dtype=np.int64) * 1000
    close = np.array([1.0, 2.0, np.nan, 4.0, 5.0, 7.0, 8.0])
    prepared = PreparedCandles(
        interval="1m",
        ts=ts,
        open=close.copy(),
        high=close.copy(),
        low=close.copy(),
        close=close.copy(),
        volume=np.ones(7),
        offsets=np.array([0, 5, 7], dtype=np.int64),
        chain=np.array(["sol", "sol"], dtype=object),
        mint=np.array(["A", "B"], dtype=object),
    )
    alerts = pd.DataFrame({"call_id": ["a1", "a2", "b1", "x"], "mint": ["A", "A", "B", "Z"]})
    alerts["chain"] = "sol"
    series = np.array([0, 0, 1, -1])
    first = np.array([60_000, 0, 0, 0])
    last = np.array([300_000, 180_000, 120_000, 60_000])
    cut = np.array([180_000, 0, 120_000, 0])
    rng = np.random.default_rng(1)

    a, removed = _isolated(alerts, prepared, series, cut, "removed", rng, first, last)
    assert list(a["mint"]) == ["A#probe0", "A#probe1", "B#probe2", "Z#probe3"]
    assert removed.offsets.tolist() == [0, 2, 2, 4, 4]  # a1: 60,120 · a2: none · b1: 0,60
    assert removed.ts.tolist() == [60_000, 120_000, 0, 60_000]
    assert np.array_equal(removed.close, [2.0, np.nan, 7.0, 8.0], equal_nan=True)

    _, rand = _isolated(alerts, prepared, series, cut, "randomized", rng, first, last)
    assert rand.offsets.tolist() == [0, 4, 7, 9, 9]
    assert rand.ts.tolist() == [t * 1000 for t in (60, 120, 180, 240, 0, 60, 120, 0, 60)]
    a1 = slice(0, 4)
    assert rand.ts[a1].tolist() == [60_000, 120_000, 180_000, 240_000]
    assert rand.close[0] == 2.0 and np.isnan(rand.close[1])  # before the cut: as they are
    # after a1's cut: drawn around 2.0 (the last finite close), within 10**±1.5 of it
    assert np.all((rand.close[2:4] >= 2.0 * 10**-1.5) & (rand.close[2:4] <= 2.0 * 10**1.5))
    assert rand.close[2] != 4.0
    # a2 has no bar before its cut: drawn around 1.0
    a2 = rand.close[4:7]
    assert np.all((a2 >= 10**-1.5) & (a2 <= 10**1.5))
    drawn = slice(2, 7)
    assert np.all(rand.high[drawn] >= np.maximum(rand.open[drawn], rand.close[drawn]))
    assert np.all(rand.low[drawn] <= np.minimum(rand.open[drawn], rand.close[drawn]))
    # b1 keeps its bars (all before its cut); the source arrays are untouched
    assert rand.close[7:9].tolist() == [7.0, 8.0]
    assert prepared.close[3] == 4.0
