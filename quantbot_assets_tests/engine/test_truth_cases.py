"""Hand-computed truth-layer cases (compute_paths), from docs/semantics.md "Entry" and
"Truth layer". Each case runs on the engine and on the reference; the arithmetic
is in the comments. Bars are (minute offset from BASE, open, high, low, close);
p0 is 1.0 unless said otherwise so multiples read directly."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pytest

from quantbot_assets import schemas
from quantbot_assets_tests.engine.conftest import BASE, MINT, Impl, M, alerts, candles

NAN = math.nan


def check(row: dict[str, Any], expected: dict[str, Any]) -> None:
    for key, want in expected.items():
        got = row[key]
        if isinstance(want, float):
            assert got == pytest.approx(want, rel=1e-9, abs=1e-9), key
        else:
            assert got == want, key


# p0 = 1.0. 2x needs high >= 2.0, 3x >= 3.0, 4x >= 4.0 (the bound itself counts).
BASIC = [
    (0, 1.0, 1.2, 0.9, 1.1),
    (1, 1.1, 2.5, 1.0, 2.0),  # first 2x bar (2.5 >= 2)
    (2, 2.0, 3.1, 0.8, 3.0),  # first 3x bar; lowest low 0.8 (after the 2x bar)
    (5, 3.0, 4.0, 2.9, 3.5),  # gap of 3 minutes; first 4x bar (4.0 >= 4.0); the peak
]


def test_basic_row(impl: Impl) -> None:
    row = impl.path(BASIC)
    check(
        row,
        {
            "call_id": "c1",
            "alert_ts_ms": BASE,
            "t0_ms": BASE,  # alert exactly on a bar open: that bar is the entry
            "p0": 1.0,
            "hit_2x": True,
            "t_2x_ms": BASE + 1 * M,  # absolute time of the bar, not an offset
            "hit_3x": True,
            "t_3x_ms": BASE + 2 * M,
            "hit_4x": True,
            "t_4x_ms": BASE + 5 * M,  # gaps keep real times
            "peak_multiple": 4.0,  # 4.0 / 1.0
            "peak_ts_ms": BASE + 5 * M,
            "dd_bps": -2000.0,  # (0.8 / 1 - 1) * 10000 over all of W
            "dd_to_2x_bps": -1000.0,  # min(0.9, 1.0) over bars 0..1 (the 2x bar inclusive)
            "alert_to_activity_ms": 0,  # m = 0.1: bar 0 high 1.2 >= 1.1, ts 0 - alert 0
            "bars": 4,
        },
    )


def test_paths_columns_and_types(impl: Impl) -> None:
    paths, excluded = impl.compute_paths(
        alerts(("c1", BASE)), candles(BASIC), interval="1m", run_id="r1"
    )
    assert list(paths.columns) == schemas.PATHS.names
    assert list(excluded.columns) == ["call_id", "reason"]
    row = paths.iloc[0]
    assert (row["run_id"], row["caller_name"], row["mint"], row["chain"], row["interval"]) == (
        "r1",
        "alice",
        MINT,
        "solana",
        "1m",
    )
    if impl.name == "engine":  # the contract: nullable ints as pandas Int64
        for name in ("t_2x_ms", "t_3x_ms", "t_4x_ms", "alert_to_activity_ms"):
            assert str(paths[name].dtype) == "Int64", name


def test_2x_3x_4x_in_one_bar(impl: Impl) -> None:
    # p0 = 2.0; bar 1 high 9.0 >= 4, 6, 8: all three at the same bar.
    row = impl.path([(0, 2.0, 2.1, 1.9, 2.0), (1, 2.0, 9.0, 1.5, 8.0), (2, 8.0, 8.5, 7.0, 7.5)])
    check(
        row,
        {
            "t_2x_ms": BASE + M,
            "t_3x_ms": BASE + M,
            "t_4x_ms": BASE + M,
            "peak_multiple": 4.5,  # 9.0 / 2.0
            "dd_bps": -2500.0,  # 1.5 / 2.0 - 1
            "dd_to_2x_bps": -2500.0,  # the 2x bar's own low counts
            "bars": 3,
        },
    )


def test_no_hit_gives_nulls(impl: Impl) -> None:
    row = impl.path([(0, 1.0, 1.05, 0.97, 1.0), (1, 1.0, 1.08, 0.96, 1.02)])
    check(
        row,
        {
            "hit_2x": False,
            "t_2x_ms": None,
            "hit_3x": False,
            "t_3x_ms": None,
            "hit_4x": False,
            "t_4x_ms": None,
            "dd_to_2x_bps": None,  # null unless hit_2x
            "alert_to_activity_ms": None,  # never 1.1 or 0.9 (m = 1000 bps)
            "peak_multiple": 1.08,
            "peak_ts_ms": BASE + M,
            "dd_bps": -400.0,  # 0.96 - 1
        },
    )


def test_peak_ts_is_first_bar_reaching_max(impl: Impl) -> None:
    row = impl.path([(0, 1.0, 1.5, 0.9, 1.2), (1, 1.2, 1.5, 1.1, 1.3), (2, 1.3, 1.4, 1.2, 1.3)])
    check(row, {"peak_multiple": 1.5, "peak_ts_ms": BASE})


@pytest.mark.parametrize(
    ("alert_at", "delay", "t0_minute", "p0", "activity_ms"),
    [
        # Alert 30 s into bar 0: bar 0 opened before the alert and is never used.
        (BASE + 30_000, 0, 1, 1.1, 3 * M - 30_000),
        # Alert on bar 1's open: entry at bar 1.
        (BASE + M, 0, 1, 1.1, 2 * M),
        # Delay 90 s from BASE: first ts >= BASE + 90 s is bar 2 (bar 1 opens at 60 s).
        (BASE, 90_000, 2, 1.12, 3 * M),
        # Delay 2 min exactly: bar 2 (>= is inclusive).
        (BASE, 2 * M, 2, 1.12, 3 * M),
    ],
)
def test_entry_bar_and_activity_clock(
    impl: Impl, alert_at: int, delay: int, t0_minute: int, p0: float, activity_ms: int
) -> None:
    # Bar 0 has a huge high that must never be seen (lookahead check).
    bars = [
        (0, 1.0, 50.0, 0.1, 1.1),
        (1, 1.1, 1.15, 1.05, 1.12),
        (2, 1.12, 1.16, 1.08, 1.15),
        (3, 1.15, 1.6, 1.1, 1.5),  # activity: high 1.6 >= 1.1 * p0 for both p0 values
    ]
    row = impl.path(bars, alert_at=alert_at, entry_delay_ms=delay)
    check(
        row,
        {
            "t0_ms": BASE + t0_minute * M,
            "p0": p0,
            # alert_to_activity_ms is measured from the alert, not from t0
            "alert_to_activity_ms": activity_ms,
            "hit_2x": False,
            "bars": 4 - t0_minute,
        },
    )
    assert row["peak_multiple"] == pytest.approx(1.6 / p0, rel=1e-12)


def test_activity_on_a_fall(impl: Impl) -> None:
    # activity_move_bps 2000: m = 0.2; bar 1 low 0.85 is not <= 0.8, bar 3 low 0.79 is.
    row = impl.path(
        [
            (0, 1.0, 1.1, 0.95, 1.0),
            (1, 1.0, 1.15, 0.85, 0.9),
            (3, 0.9, 0.92, 0.79, 0.8),
        ],
        activity_move_bps=2000,
    )
    check(row, {"alert_to_activity_ms": 3 * M, "dd_bps": -2100.0})


@pytest.mark.parametrize(
    ("horizon", "bars", "hit_2x"),
    [
        # W = bars with ts < alert + horizon. Horizon 3 min: bars 0, 1, 2; bar 3's 5x unseen.
        (3 * M, 3, False),
        # Horizon 3 min + 1 ms: bar 3 opens inside the window and counts.
        (3 * M + 1, 4, True),
    ],
)
def test_horizon_cut_off(impl: Impl, horizon: int, bars: int, hit_2x: bool) -> None:
    path = [(i, 1.0, 1.05, 0.95, 1.0) for i in range(3)] + [(3, 1.0, 5.0, 0.5, 4.0)]
    row = impl.path(path, horizon_ms=horizon)
    check(row, {"bars": bars, "hit_2x": hit_2x})


def test_malformed_later_bars_prove_nothing(impl: Impl) -> None:
    # Bad fields are NaN; maxima/minima skip them; comparisons with them never fire.
    row = impl.path(
        [
            (0, 1.0, 1.2, 0.9, 1.0),
            (1, 1.0, NAN, 0.5, 1.0),  # NaN high; the low 0.5 still counts
            (2, 1.0, 9.0, 10.0, 1.0),  # high < low: neither counts (else peak 9 / 2x hit)
            (3, 1.0, 1.5, 0.0, 1.2),  # zero low: not a price (else dd -10000)
            (4, NAN, 1.6, 0.8, 1.0),  # NaN open after entry: high and low still count
            (5, 1.0, -3.0, 0.7, 1.0),  # negative high: not a price
        ]
    )
    check(
        row,
        {
            "peak_multiple": 1.6,  # max(1.2, 1.5, 1.6)
            "peak_ts_ms": BASE + 4 * M,
            "dd_bps": -5000.0,  # min(0.9, 0.5, 0.8, 0.7) = 0.5
            "hit_2x": False,
            "bars": 6,  # malformed bars are kept in place
        },
    )


@pytest.mark.parametrize("bad_open", [NAN, 0.0, -1.0, math.inf])
def test_bad_entry_open_excludes_call(impl: Impl, bad_open: float) -> None:
    # p0 = open_e must be finite and > 0; the next good bar is not used instead.
    paths, excluded = impl.compute_paths(
        alerts(("c1", BASE)),
        candles([(0, bad_open, 1.2, 0.9, 1.0), (1, 1.0, 1.1, 0.9, 1.0)]),
    )
    assert len(paths) == 0
    assert excluded.to_dict("records") == [{"call_id": "c1", "reason": "invalid_entry_price"}]


@pytest.mark.parametrize(
    ("alert_at", "bars", "kw"),
    [
        (BASE, [], {}),  # no candles at all for the mint
        (BASE + 10 * M, [(0, 1.0, 1.1, 0.9, 1.0), (9, 1.0, 1.1, 0.9, 1.0)], {}),  # only before
        (BASE + 30_000, [(0, 1.0, 1.1, 0.9, 1.0)], {}),  # the only bar opened before the alert
        (BASE, [(5, 1.0, 1.1, 0.9, 1.0)], {"horizon_ms": 5 * M}),  # first bar at the horizon
        (BASE, [(1, 1.0, 1.1, 0.9, 1.0)], {"entry_delay_ms": 2 * M}),  # only bar before delay
    ],
)
def test_no_entry_bar_excludes_call(
    impl: Impl, alert_at: int, bars: list, kw: dict[str, Any]
) -> None:
    frame = candles(bars) if bars else candles([(0, 1.0, 1.1, 0.9, 1.0)], mint="OTHER")
    paths, excluded = impl.compute_paths(alerts(("c1", alert_at)), frame, **kw)
    assert len(paths) == 0
    assert excluded.to_dict("records") == [{"call_id": "c1", "reason": "no_candles"}]


def test_other_chain_same_mint_not_used(impl: Impl) -> None:
    frame = candles([(0, 1.0, 1.1, 0.9, 1.0)])
    frame["chain"] = "ethereum"
    paths, excluded = impl.compute_paths(alerts(("c1", BASE)), frame)
    assert len(paths) == 0
    assert excluded["reason"].tolist() == ["no_candles"]


def test_several_calls_on_one_mint_are_independent(impl: Impl) -> None:
    bars = [(i, 1.0 + i, 1.5 + i, 0.5 + i, 1.0 + i) for i in range(6)]
    paths, excluded = impl.compute_paths(
        alerts(("a", BASE), ("b", BASE + 2 * M), ("c", BASE + 7 * M)), candles(bars)
    )
    assert excluded.to_dict("records") == [{"call_id": "c", "reason": "no_candles"}]
    got = paths.set_index("call_id")
    # a: p0 = 1.0, peak high 6.5 (bar 5) -> 6.5; b: p0 = 3.0 (bar 2), peak 6.5 / 3.
    assert got.loc["a", "p0"] == 1.0
    assert got.loc["a", "peak_multiple"] == pytest.approx(6.5)
    assert got.loc["b", "p0"] == 3.0
    assert got.loc["b", "peak_multiple"] == pytest.approx(6.5 / 3.0)
    assert int(got.loc["b", "bars"]) == 4
    # b's 2x needs 6.0: bar 5's high 6.5; a's 2x needs 2.0: bar 1's high 2.5.
    assert int(got.loc["a", "t_2x_ms"]) == BASE + M
    assert int(got.loc["b", "t_2x_ms"]) == BASE + 5 * M


# 1m bars for a 5m run, alert at BASE + 2 min. The 5m bar at 0 opened before the
# alert (never used, even though minute 1 has a 100x high). Resampled bars:
#   5m@5:  open 2.0 (minute 5), high max(2.2, 4.5, 3.2, 2.1) = 4.5,
#          low min(1.9, 2.0, 1.5, 1.8) = 1.5, close 1.9 (minute 9; minute 8 is a gap)
#   5m@10: open 1.9, high 6.0, low 1.0, close 5.0
FIVE_MIN = [
    (0, 1.0, 1.1, 0.9, 1.0),
    (1, 1.0, 100.0, 0.9, 1.0),
    (2, 1.0, 1.1, 0.9, 1.0),
    (3, 1.0, 1.1, 0.9, 1.0),
    (4, 1.0, 1.1, 0.9, 2.0),
    (5, 2.0, 2.2, 1.9, 2.1),
    (6, 2.1, 4.5, 2.0, 3.0),
    (7, 3.0, 3.2, 1.5, 2.0),
    (9, 2.0, 2.1, 1.8, 1.9),
    (10, 1.9, 6.0, 1.0, 5.0),
]


def test_5m_resampling(impl: Impl) -> None:
    row = impl.path(FIVE_MIN, alert_at=BASE + 2 * M, interval="5m")
    check(
        row,
        {
            "interval": "5m",
            "t0_ms": BASE + 5 * M,
            "p0": 2.0,
            "t_2x_ms": BASE + 5 * M,  # 4.5 >= 4.0 in the 5m@5 bar
            "t_3x_ms": BASE + 10 * M,  # 6.0 >= 6.0
            "hit_4x": False,  # would need 8.0
            "peak_multiple": 3.0,  # 6.0 / 2.0
            "peak_ts_ms": BASE + 10 * M,
            "dd_bps": -5000.0,  # 1.0 / 2.0 - 1
            "dd_to_2x_bps": -2500.0,  # 1.5 / 2.0 - 1 (5m@5 only)
            "alert_to_activity_ms": 3 * M,  # 5m@5 high 4.5 >= 2.2; ts BASE+5m - alert BASE+2m
            "bars": 2,
        },
    )


def test_excluded_and_paths_partition_the_calls(impl: Impl) -> None:
    frame = pd.concat(
        [candles(BASIC), candles([(0, NAN, 1.0, 1.0, 1.0)], mint="BAD")], ignore_index=True
    )
    calls = pd.concat(
        [alerts(("ok", BASE)), alerts(("bad", BASE), mint="BAD"), alerts(("none", BASE + 99 * M))],
        ignore_index=True,
    )
    paths, excluded = impl.compute_paths(calls, frame)
    assert paths["call_id"].tolist() == ["ok"]
    assert sorted(map(tuple, excluded.to_numpy().tolist())) == [
        ("bad", "invalid_entry_price"),
        ("none", "no_candles"),
    ]
