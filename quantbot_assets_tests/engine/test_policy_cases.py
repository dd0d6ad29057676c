"""Hand-computed policy-layer cases (simulate_policy) and policy validation
(parse_policy), from docs/semantics.md "Policies" and "Replay". Each replay case runs on the
engine and on the reference. Bars are (minute from BASE, open, high, low, close)
and p0 = 1.0, so a level of 1.5 is 1.5 * p0. The alert is at BASE unless said."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from quantbot_assets import schemas
from quantbot_assets_tests.engine.conftest import BASE, Impl, M, alerts, candles

NAN = math.nan
FLAT0 = (0, 1.0, 1.1, 0.95, 1.0)  # a quiet entry bar: low 0.95 -> MAE -500 on its own


def check(row: dict[str, Any], expected: dict[str, Any]) -> None:
    for key, want in expected.items():
        got = row[key]
        if key == "exit_ts_ms":
            assert got == BASE + want * M, key  # expected given in minutes from BASE
        elif isinstance(want, float):
            assert got == pytest.approx(want, rel=1e-9, abs=1e-9), key
        else:
            assert got == want, key


def fixed(sl: float, tp: float | None = None) -> dict[str, Any]:
    p: dict[str, Any] = {"kind": "fixed_stop", "stop_loss_bps": sl}
    if tp is not None:
        p["take_profit_bps"] = tp
    return p


def test_trades_columns(impl: Impl) -> None:
    trades = impl.simulate_policy(
        alerts(("c1", BASE)),
        candles([FLAT0, (1, 1.0, 1.2, 0.9, 1.1)]),
        fixed(1000),
        policy_id="fs",
        run_id="r1",
    )
    assert list(trades.columns) == schemas.TRADES.names
    row = trades.iloc[0]
    assert (row["run_id"], row["policy_id"], row["call_id"], row["caller_name"]) == (
        "r1",
        "fs",
        "c1",
        "alice",
    )


def test_excluded_calls_have_no_trades(impl: Impl) -> None:
    trades = impl.simulate_policy(
        alerts(("ok", BASE), ("late", BASE + 50 * M)),
        candles([FLAT0, (1, 1.0, 1.2, 0.9, 1.1)]),
        fixed(1000),
        policy_id="fs",
    )
    assert trades["call_id"].tolist() == ["ok"]


def test_stop_and_take_profit_in_one_bar_stop_wins(impl: Impl) -> None:
    # S = 0.9, L = 1.5. Bar 1: open 1.0 > S, low 0.85 <= S -> stop at S before TP is checked.
    row = impl.trade([FLAT0, (1, 1.0, 1.6, 0.85, 1.2)], fixed(1000, 5000))
    check(
        row,
        {
            "exit_reason": "stop_loss",
            "exit_px": 0.9,
            "exit_ts_ms": 1,
            "realized_return_bps": -1000.0,  # 0.9 / 1 - 1
            "stop_out": True,
            "max_adverse_excursion_bps": -1000.0,  # bar 1's low replaced by the fill 0.9
            "time_exposed_ms": M,
            "tail_capture": -1000.0 / 6000.0,  # peak 1.6: (1.6 - 1) * 10000 = 6000
            "entry_ts_ms": BASE,
            "entry_px": 1.0,
            # open 1.0: S = 0.9 in [low 0.85, open) and L = 1.5 in (open, high 1.6]: the
            # order inside the bar decides, so the bar is ambiguous; the optimistic reading
            # takes the profit at L: +5000.
            "ambiguous": True,
            "ambiguity_resolved": False,
            "optimistic_return_bps": 5000.0,
        },
    )


def test_gap_through_stop_fills_at_open(impl: Impl) -> None:
    # Bar 1 opens at 0.7 <= S = 0.9: fill at 0.7, and 0.7 (not the low 0.6) enters MAE.
    row = impl.trade([FLAT0, (1, 0.7, 0.8, 0.6, 0.75)], fixed(1000, 5000))
    check(
        row,
        {
            "exit_reason": "stop_loss",
            "exit_px": 0.7,
            "realized_return_bps": -3000.0,
            "max_adverse_excursion_bps": -3000.0,
            "stop_out": True,
            "tail_capture": -3000.0 / 1000.0,  # peak 1.1 -> 1000
        },
    )


def test_gap_above_take_profit_fills_at_the_open_before_the_stop(impl: Impl) -> None:
    # Bar 1 opens at 1.8 >= L = 1.5: the open is the bar's first price, so the take profit
    # fills there (step 3a) before the low 0.5 <= S = 0.9 can matter. (Before 2026-11-30 the
    # stop inside the bar came first: -1000.) The gap decides: not ambiguous. MAE: the fill
    # at the open replaces bar 1's low: min(bar 0's 0.95 -> -500, 1.8) = -500.
    row = impl.trade([FLAT0, (1, 1.8, 2.0, 0.5, 1.9)], fixed(1000, 5000))
    check(
        row,
        {
            "exit_reason": "take_profit",
            "exit_px": 1.8,
            "exit_ts_ms": 1,
            "realized_return_bps": 8000.0,
            "stop_out": False,
            "max_adverse_excursion_bps": -500.0,
            "tail_capture": 0.8,  # 8000 / ((2.0 - 1) * 10000)
            "ambiguous": False,
            "ambiguity_resolved": False,
            "optimistic_return_bps": 8000.0,
        },
    )


def test_gap_down_through_the_stop_is_not_ambiguous(impl: Impl) -> None:
    # Bar 1 opens at 0.85 <= S = 0.9 and reaches L = 1.5 later: the gap fills the stop at
    # the open, before anything inside the bar; the open decides, not ambiguous.
    row = impl.trade([FLAT0, (1, 0.85, 1.6, 0.8, 1.0)], fixed(1000, 5000))
    check(
        row,
        {
            "exit_reason": "stop_loss",
            "exit_px": 0.85,
            "realized_return_bps": -1500.0,
            "ambiguous": False,
            "optimistic_return_bps": -1500.0,
        },
    )


def test_gap_through_take_profit_fills_at_open(impl: Impl) -> None:
    # time_stop with TP 5000 (L = 1.5), no stop. Bar 1 opens at 1.8 >= L: fill at 1.8.
    # The fill is at the bar's open, so 1.8 replaces bar 1's low 0.5 in MAE:
    # MAE = min(0, bar 0: 0.95 -> -500, bar 1: 1.8 -> +8000) = -500.
    policy = {"kind": "time_stop", "max_hold_ms": 10 * M, "take_profit_bps": 5000}
    row = impl.trade([FLAT0, (1, 1.8, 2.0, 0.5, 1.9)], policy)
    check(
        row,
        {
            "exit_reason": "take_profit",
            "exit_px": 1.8,
            "exit_ts_ms": 1,
            "realized_return_bps": 8000.0,
            "max_adverse_excursion_bps": -500.0,
            "stop_out": False,
            "tail_capture": 0.8,  # 8000 / ((2.0 - 1) * 10000)
        },
    )


def test_intrabar_take_profit_keeps_the_low(impl: Impl) -> None:
    # Bar 1: open 1.2 < L = 1.5 <= high 1.6: fill at 1.5. The order inside the bar is
    # unknown, so bar 1's low 0.6 stays in MAE: (0.6 - 1) * 10000 = -4000.
    policy = {"kind": "time_stop", "max_hold_ms": 10 * M, "take_profit_bps": 5000}
    row = impl.trade([FLAT0, (1, 1.2, 1.6, 0.6, 1.5)], policy)
    check(
        row,
        {
            "exit_reason": "take_profit",
            "exit_px": 1.5,
            "realized_return_bps": 5000.0,
            "max_adverse_excursion_bps": -4000.0,
            "tail_capture": 5000.0 / 6000.0,
        },
    )


TRAIL = {"kind": "trailing_stop", "activation_bps": 5000, "trail_bps": 2000}


def test_trail_armed_on_one_bar_hit_on_the_next(impl: Impl) -> None:
    # Activation at 1.5. Bar 1's high 2.0 arms the trail after bar 1's checks; peak 2.0.
    # Bar 2: T = 2.0 * (1 - 0.2) = 1.6; open 1.9 > T, low 1.5 <= T -> fill at 1.6.
    row = impl.trade(
        [(0, 1.0, 1.2, 0.95, 1.1), (1, 1.1, 2.0, 1.05, 1.9), (2, 1.9, 1.95, 1.5, 1.6)], TRAIL
    )
    check(
        row,
        {
            "exit_reason": "trailing_stop",
            "exit_px": 1.6,
            "exit_ts_ms": 2,
            "realized_return_bps": 6000.0,
            "stop_out": True,
            "max_adverse_excursion_bps": -500.0,  # bar 0 low 0.95; bar 2 counts as 1.6
            "tail_capture": 0.6,  # 6000 / 10000
        },
    )


def test_trail_not_hit_on_the_bar_that_arms_it(impl: Impl) -> None:
    # Bar 1's high 2.0 would put T at 1.6 and its low 1.0 is under that, but the trail
    # arms only for the next bar. There is none: end_of_window at bar 1's close 1.5.
    row = impl.trade([(0, 1.0, 1.2, 0.95, 1.1), (1, 1.1, 2.0, 1.0, 1.5)], TRAIL)
    check(
        row,
        {
            "exit_reason": "end_of_window",
            "exit_px": 1.5,
            "exit_ts_ms": 1,
            "realized_return_bps": 5000.0,
            "stop_out": False,
            "max_adverse_excursion_bps": -500.0,  # lows 0.95 and 1.0 (close fill keeps the low)
        },
    )


def test_trail_peak_is_highest_high_before_the_bar(impl: Impl) -> None:
    # Activation 0 arms on bar 0 (high 1.0 >= 1.0). Peak after bar 1 is 1.3 (bar 1), and
    # bar 2's own high 1.8 does not raise its level: T = 1.3 * 0.9 = 1.17, low 1.1 -> 1.17.
    policy = {"kind": "trailing_stop", "activation_bps": 0, "trail_bps": 1000}
    row = impl.trade(
        [(0, 1.0, 1.0, 0.98, 1.0), (1, 1.0, 1.3, 1.2, 1.25), (2, 1.25, 1.8, 1.1, 1.5)], policy
    )
    check(row, {"exit_reason": "trailing_stop", "exit_px": 1.17, "exit_ts_ms": 2})


@pytest.mark.parametrize(
    ("trail_bps", "reason", "px"),
    [
        # Bar 0 arms (high 1.2 >= 1.1), peak 1.2. Hard stop H = 0.8.
        # trail 3000: T = 1.2 * 0.7 = 0.84 > H; low 0.7 fires both; highest level wins.
        (3000, "trailing_stop", 0.84),
        # trail 5000: T = 0.6; low 0.7 fires only H.
        (5000, "hard_stop", 0.8),
    ],
)
def test_hard_stop_vs_trail(impl: Impl, trail_bps: int, reason: str, px: float) -> None:
    policy = {
        "kind": "trailing_stop",
        "activation_bps": 1000,
        "trail_bps": trail_bps,
        "hard_stop_bps": 2000,
    }
    row = impl.trade([(0, 1.0, 1.2, 0.95, 1.1), (1, 1.0, 1.05, 0.7, 0.75)], policy)
    check(
        row,
        {
            "exit_reason": reason,
            "exit_px": px,
            "stop_out": True,
            "realized_return_bps": (px - 1) * 10000,
            "max_adverse_excursion_bps": (px - 1) * 10000,
        },
    )


def test_hard_stop_fires_before_activation(impl: Impl) -> None:
    # Never armed (highs <= 1.05 < 1.5); H = 0.8 fires on bar 1's low 0.75.
    policy = {"kind": "trailing_stop", "activation_bps": 5000, "trail_bps": 1000}
    policy["hard_stop_bps"] = 2000
    row = impl.trade([(0, 1.0, 1.05, 0.95, 1.0), (1, 1.0, 1.02, 0.75, 0.8)], policy)
    check(row, {"exit_reason": "hard_stop", "exit_px": 0.8})


def test_gap_through_the_trail(impl: Impl) -> None:
    # Bar 1's high 2.0 arms (activation 1.5) and sets peak 2.0: T = 1.6 on bar 2, which
    # opens at 1.4 <= T: fill at the open 1.4, and 1.4 replaces bar 2's low 1.0 in MAE.
    row = impl.trade(
        [(0, 1.0, 1.2, 0.95, 1.1), (1, 1.1, 2.0, 1.05, 1.9), (2, 1.4, 1.5, 1.0, 1.2)], TRAIL
    )
    check(
        row,
        {
            "exit_reason": "trailing_stop",
            "exit_px": 1.4,
            "exit_ts_ms": 2,
            "max_adverse_excursion_bps": -500.0,
        },
    )


def test_gap_under_two_stops_takes_the_higher_reason(impl: Impl) -> None:
    # S = 0.9 (stop_loss) and H = 0.8 (hard_stop); bar 1 opens at 0.7 under both: both
    # fire, the highest level (S) names the reason, the fill is the open 0.7.
    trail = {"kind": "trailing_stop", "activation_bps": 9000, "trail_bps": 100}
    policy = {"kind": "combo", "policies": [{**trail, "hard_stop_bps": 2000}, fixed(1000)]}
    row = impl.trade([FLAT0, (1, 0.7, 0.75, 0.6, 0.65)], policy)
    check(row, {"exit_reason": "stop_loss", "exit_px": 0.7})


# Same-level stops: activation 0 arms on bar 0 (high 1.0), peak 1.0, so
# T = 1.0 * (1 - 0.2) = 0.8 = H = S. Bar 1's low 0.7 fires all of them at 0.8.
SAME_LEVEL_BARS = [(0, 1.0, 1.0, 0.98, 1.0), (1, 0.9, 0.95, 0.7, 0.75)]
TRAIL_0 = {"kind": "trailing_stop", "activation_bps": 0, "trail_bps": 2000}


@pytest.mark.parametrize(
    ("policy", "reason"),
    [
        ({**TRAIL_0, "hard_stop_bps": 2000}, "hard_stop"),  # hard before trailing
        ({"kind": "combo", "policies": [TRAIL_0, fixed(2000)]}, "stop_loss"),  # stop_loss first
        (
            {"kind": "combo", "policies": [{**TRAIL_0, "hard_stop_bps": 2000}, fixed(2000)]},
            "stop_loss",
        ),
    ],
)
def test_two_stops_at_the_same_level(impl: Impl, policy: dict[str, Any], reason: str) -> None:
    row = impl.trade(SAME_LEVEL_BARS, policy)
    check(row, {"exit_reason": reason, "exit_px": 0.8, "exit_ts_ms": 1, "stop_out": True})


@pytest.mark.parametrize(
    ("bars", "exit_minute", "px"),
    [
        # max_hold 3 min: bar 3 (ts = t0 + 3 min) exits at its open 1.3; its high 2.0
        # would hit any TP and its low 0.5 any stop, but the time stop comes first.
        ([(i, 1.0, 1.1, 0.9, 1.0) for i in range(3)] + [(3, 1.3, 2.0, 0.5, 1.4)], 3, 1.3),
        # With a gap the time stop fires at the first bar at or after t0 + 3 min.
        ([(0, 1.0, 1.1, 0.9, 1.0), (1, 1.0, 1.1, 0.9, 1.0), (5, 1.2, 1.3, 0.4, 1.2)], 5, 1.2),
    ],
)
def test_time_stop_at_the_open(impl: Impl, bars: list, exit_minute: int, px: float) -> None:
    policy = {"kind": "time_stop", "max_hold_ms": 3 * M, "take_profit_bps": 5000}
    row = impl.trade(bars, policy)
    check(
        row,
        {
            "exit_reason": "time_stop",
            "exit_px": px,
            "exit_ts_ms": exit_minute,
            "realized_return_bps": (px - 1) * 10000,
            "stop_out": False,  # a time stop is not a stop-out
            # lows 0.9 before; the exit bar's low is replaced by its open (a fill at the open)
            "max_adverse_excursion_bps": -1000.0,
            "time_exposed_ms": exit_minute * M,
        },
    )


@pytest.mark.parametrize(
    ("bar1", "px"),
    [
        # Bar 1 is due (t0 + 1 min) and its low 0.5 is under S = 0.9: the time stop is
        # checked first and fills at the open 0.95.
        ((1, 0.95, 1.0, 0.5, 0.6), 0.95),
        # Even a gap under S: the time stop fires first, at the open 0.7 (no stop-out).
        ((1, 0.7, 0.8, 0.5, 0.6), 0.7),
    ],
)
def test_time_stop_before_stops_in_a_combo(impl: Impl, bar1: tuple, px: float) -> None:
    policy = {"kind": "combo", "policies": [fixed(1000), {"kind": "time_stop", "max_hold_ms": M}]}
    row = impl.trade([FLAT0, bar1], policy)
    check(row, {"exit_reason": "time_stop", "exit_px": px, "stop_out": False})


def test_time_stop_zero_hold_exits_at_entry_open(impl: Impl) -> None:
    # ts_e >= t0 + 0: exit at p0 on the entry bar; nothing gained, nothing lost.
    row = impl.trade([(0, 1.0, 1.5, 0.5, 1.2)], {"kind": "time_stop", "max_hold_ms": 0})
    check(
        row,
        {
            "exit_reason": "time_stop",
            "exit_px": 1.0,
            "exit_ts_ms": 0,
            "realized_return_bps": 0.0,
            "max_adverse_excursion_bps": 0.0,
            "time_exposed_ms": 0,
        },
    )


def test_time_stop_waits_for_a_proven_open(impl: Impl) -> None:
    # The specification is silent on a time stop due on a bar whose open is NaN. Conservative
    # reading (no fill the candles cannot prove): no fill at a NaN open; the time stop
    # fills at the next bar with a proven open: bar 2's 1.1.
    policy = {"kind": "time_stop", "max_hold_ms": M}
    row = impl.trade([FLAT0, (1, NAN, 1.2, 0.92, 1.1), (2, 1.1, 1.2, 1.0, 1.15)], policy)
    check(row, {"exit_reason": "time_stop", "exit_px": 1.1, "exit_ts_ms": 2})


def test_nan_open_stop_fills_at_level(impl: Impl) -> None:
    # A NaN open cannot gap through the stop (comparisons with NaN never fire); the low
    # 0.5 <= S = 0.9 proves the level traded: fill at 0.9.
    row = impl.trade([FLAT0, (1, NAN, 1.0, 0.5, 0.6)], fixed(1000))
    check(row, {"exit_reason": "stop_loss", "exit_px": 0.9, "max_adverse_excursion_bps": -1000.0})


def test_stop_on_the_entry_bar(impl: Impl) -> None:
    # The entry bar is used from its open on: its low 0.85 <= S = 0.9 stops at once.
    row = impl.trade([(0, 1.0, 1.05, 0.85, 0.9), (1, 0.9, 3.0, 0.9, 2.0)], fixed(1000, 5000))
    check(
        row,
        {"exit_reason": "stop_loss", "exit_px": 0.9, "exit_ts_ms": 0, "time_exposed_ms": 0},
    )


def test_end_of_window_and_null_tail_capture(impl: Impl) -> None:
    # No stop reached; exit at the last bar's close 0.9. Peak multiple 1.0 <= 1 -> null.
    row = impl.trade([(0, 1.0, 1.0, 0.85, 0.95), (1, 0.95, 0.97, 0.88, 0.9)], fixed(5000))
    check(
        row,
        {
            "exit_reason": "end_of_window",
            "exit_px": 0.9,
            "exit_ts_ms": 1,
            "realized_return_bps": -1000.0,
            "max_adverse_excursion_bps": -1500.0,  # lows 0.85 and 0.88 (a close fill keeps the low)
            "stop_out": False,
            "tail_capture": None,
        },
    )


def test_horizon_cut_off(impl: Impl) -> None:
    # horizon 3 min: W = bars 0, 1, 2; bar 3's crash is outside. End at bar 2's close 1.2.
    bars = [FLAT0, (1, 1.0, 1.1, 0.95, 1.1), (2, 1.1, 1.25, 1.05, 1.2), (3, 1.2, 1.2, 0.1, 0.2)]
    row = impl.trade(bars, fixed(1000), horizon_ms=3 * M)
    check(row, {"exit_reason": "end_of_window", "exit_px": 1.2, "exit_ts_ms": 2})


def test_entry_delay(impl: Impl) -> None:
    # Delay 2 min: entry at bar 2, p0 = 2.0; S = 1.8, L = 3.0. Bar 0's low 0.1 is never
    # seen; bar 3's high 3.5 takes profit at 3.0: +5000, 1 minute exposed.
    bars = [(0, 1.0, 1.0, 0.1, 1.0), (1, 1.0, 2.0, 1.0, 2.0), (2, 2.0, 2.1, 1.9, 2.0)]
    bars.append((3, 2.0, 3.5, 1.95, 3.2))
    row = impl.trade(bars, fixed(1000, 5000), entry_delay_ms=2 * M)
    check(
        row,
        {
            "entry_ts_ms": BASE + 2 * M,
            "entry_px": 2.0,
            "exit_px": 3.0,
            "exit_ts_ms": 3,
            "realized_return_bps": 5000.0,
            "time_exposed_ms": M,
            "max_adverse_excursion_bps": -500.0,  # 1.9 / 2.0 - 1; bar 3's 1.95 -> -250
            "tail_capture": 5000.0 / 7500.0,  # peak 3.5 / 2.0 = 1.75
        },
    )


def test_slippage_and_fees(impl: Impl) -> None:
    # slippage 100 bps, fee 30 bps per side. entry_px = 1.0 * 1.01 = 1.01; TP fill 1.5 ->
    # exit_px = 1.5 * 0.99 = 1.485. The fee is a share of each side's notional:
    # realized = (1.485 * (1 - 0.003) / (1.01 * (1 + 0.003)) - 1) * 10000
    #          = (1.480545 / 1.01303 - 1) * 10000 = 4615.0163... (not gross - 60 any more);
    # tail_capture uses the gross (1.485 / 1.01 - 1) * 10000 over (1.6 - 1) * 10000.
    row = impl.trade(
        [FLAT0, (1, 1.2, 1.6, 1.0, 1.5)], fixed(1000, 5000), fee_bps=30.0, slippage_bps=100.0
    )
    gross = (1.485 / 1.01 - 1) * 10000
    check(
        row,
        {
            "entry_px": 1.01,
            "exit_px": 1.485,
            "realized_return_bps": (1.480545 / 1.01303 - 1) * 10000,
            "tail_capture": gross / 6000.0,
            "max_adverse_excursion_bps": -500.0,  # MAE uses prices before slippage
        },
    )
    assert row["realized_return_bps"] == pytest.approx(4615.016337, abs=1e-6)


def test_fees_never_lose_more_than_everything(impl: Impl) -> None:
    # A rug: bar 1 gaps to 0.0001 (stop S = 0.5 at the open). fee 100 bps per side:
    # (0.0001 * 0.99 / (1.0 * 1.01) - 1) * 10000 = -9999.0198..., not -9999 - 200 = -10199.
    row = impl.trade([FLAT0, (1, 0.0001, 0.0001, 0.0001, 0.0001)], fixed(5000), fee_bps=100.0)
    check(
        row,
        {
            "exit_px": 0.0001,
            "realized_return_bps": (0.0001 * 0.99 / 1.01 - 1) * 10000,
            "optimistic_return_bps": (0.0001 * 0.99 / 1.01 - 1) * 10000,
        },
    )
    assert row["realized_return_bps"] >= -10000.0


def test_ladder_levels_in_one_bar_then_a_stop_on_the_rest(impl: Impl) -> None:
    # Levels 1.5 x 0.25 and 2.0 x 0.25, stop S = 0.8. Bar 1 (open 1.0, high 2.2, low 0.9):
    # no stop, both levels fill intrabar. Bar 2: low 0.7 <= 0.8 -> the other 0.5 at 0.8.
    # exit_px = 0.25 * 1.5 + 0.25 * 2.0 + 0.5 * 0.8 = 1.275 -> +2750.
    policy = {
        "kind": "ladder",
        "levels": [{"multiple": 1.5, "fraction": 0.25}, {"multiple": 2.0, "fraction": 0.25}],
        "stop_loss_bps": 2000,
    }
    row = impl.trade([FLAT0, (1, 1.0, 2.2, 0.9, 2.0), (2, 1.2, 1.3, 0.7, 0.75)], policy)
    check(
        row,
        {
            "exit_reason": "stop_loss",  # the reason of the last fill
            "exit_px": 1.275,
            "exit_ts_ms": 2,
            "realized_return_bps": 2750.0,
            "stop_out": True,  # part of it closed on a stop
            "max_adverse_excursion_bps": -2000.0,  # lows 0.95, 0.9, then the stop fill 0.8
            "tail_capture": 2750.0 / 12000.0,  # peak 2.2
        },
    )


def test_ladder_stop_before_levels_in_one_bar(impl: Impl) -> None:
    # Bar 1 reaches the 2.0 level (high 2.5) and the stop S = 0.9 (low 0.85), neither at the
    # open 1.0: the stop closes the whole position at 0.9; no level fills. Ambiguous: the
    # optimistic reading sells 0.5 at 2.0 first and the other 0.5 at S:
    # exit 0.5 * 2.0 + 0.5 * 0.9 = 1.45 -> +4500.
    policy = {
        "kind": "ladder",
        "levels": [{"multiple": 2.0, "fraction": 0.5}],
        "stop_loss_bps": 1000,
    }
    row = impl.trade([FLAT0, (1, 1.0, 2.5, 0.85, 2.0)], policy)
    check(
        row,
        {
            "exit_reason": "stop_loss",
            "exit_px": 0.9,
            "realized_return_bps": -1000.0,
            "ambiguous": True,
            "optimistic_return_bps": 4500.0,
        },
    )


LADDER_12_20 = {
    "kind": "ladder",
    "levels": [{"multiple": 1.2, "fraction": 0.5}, {"multiple": 2.0, "fraction": 0.5}],
    "stop_loss_bps": 2000,
}


def test_ladder_gap_fills_a_level_then_the_rest_meets_the_stop(impl: Impl) -> None:
    # S = 0.8. Bar 1 opens at 1.3 >= 1.2: 0.5 fills at the open 1.3 (3a). The other 0.5 then
    # meets the stop inside the bar (low 0.7 <= 0.8) before the 2.0 level (high 2.1):
    # exit 0.5 * 1.3 + 0.5 * 0.8 = 1.05 -> +500, reason of the last fill: stop_loss.
    # The 2.0 level lies in (open 1.3, high 2.1]: ambiguous; optimistic 0.65 + 0.5 * 2.0
    # = 1.65 -> +6500 (the ladder completes, nothing is left for the stop).
    # MAE: the last fill is the stop fill 0.8 -> -2000.
    row = impl.trade([FLAT0, (1, 1.3, 2.1, 0.7, 1.0)], LADDER_12_20)
    check(
        row,
        {
            "exit_reason": "stop_loss",
            "exit_px": 1.05,
            "exit_ts_ms": 1,
            "realized_return_bps": 500.0,
            "stop_out": True,
            "max_adverse_excursion_bps": -2000.0,
            "ambiguous": True,
            "optimistic_return_bps": 6500.0,
        },
    )


def test_ladder_gap_fills_a_level_then_the_stop_unambiguously(impl: Impl) -> None:
    # As above but the high 1.9 stays under 2.0: only the stop is inside the bar after the
    # open's fill: not ambiguous, optimistic = realized = +500.
    row = impl.trade([FLAT0, (1, 1.3, 1.9, 0.7, 1.0)], LADDER_12_20)
    check(
        row,
        {
            "exit_reason": "stop_loss",
            "exit_px": 1.05,
            "ambiguous": False,
            "optimistic_return_bps": 500.0,
        },
    )


def test_ladder_level_and_its_stop_in_one_later_bar(impl: Impl) -> None:
    # Levels 1.5 x 0.5 and 3.0 x 0.5, S = 0.8. Bar 1 fills 1.5 intrabar. Bar 2 (open 1.5,
    # high 3.2, low 0.7): S = 0.8 in [low, open) and 3.0 in (open, high]: ambiguous.
    # Pessimistic: the other 0.5 at 0.8 -> 0.75 + 0.4 = 1.15 -> +1500.
    # Optimistic: 0.5 at 3.0 -> 0.75 + 1.5 = 2.25 -> +12500 (ladder complete).
    policy = {
        "kind": "ladder",
        "levels": [{"multiple": 1.5, "fraction": 0.5}, {"multiple": 3.0, "fraction": 0.5}],
        "stop_loss_bps": 2000,
    }
    row = impl.trade([FLAT0, (1, 1.0, 1.6, 0.9, 1.5), (2, 1.5, 3.2, 0.7, 1.0)], policy)
    check(
        row,
        {
            "exit_reason": "stop_loss",
            "exit_px": 1.15,
            "exit_ts_ms": 2,
            "realized_return_bps": 1500.0,
            "ambiguous": True,
            "ambiguity_resolved": False,
            "optimistic_return_bps": 12500.0,
        },
    )


def test_trail_and_take_profit_in_one_bar(impl: Impl) -> None:
    # Trail: activation 1.1, trail 10 %; take profit 1.5 (time_stop leg). Bar 0's high 1.2
    # arms it: T = 1.2 * 0.9 = 1.08 on bar 1 (open 1.2, high 1.6, low 1.0): T in [low, open),
    # L in (open, high]: ambiguous. Pessimistic trailing stop at 1.08 (+800), optimistic
    # take profit at 1.5 (+5000).
    policy = {
        "kind": "combo",
        "policies": [
            {"kind": "trailing_stop", "activation_bps": 1000, "trail_bps": 1000},
            {"kind": "time_stop", "max_hold_ms": 100 * M, "take_profit_bps": 5000},
        ],
    }
    row = impl.trade([(0, 1.0, 1.2, 0.95, 1.1), (1, 1.2, 1.6, 1.0, 1.3)], policy)
    check(
        row,
        {
            "exit_reason": "trailing_stop",
            "exit_px": 1.08,
            "realized_return_bps": 800.0,
            "ambiguous": True,
            "optimistic_return_bps": 5000.0,
        },
    )


def test_time_stop_at_the_open_is_not_ambiguous(impl: Impl) -> None:
    # Bar 1 falls due (hold 1 min): the time stop fills at its open before the stop (low 0.5)
    # and the take profit (high 2.0) inside it could: not ambiguous.
    policy = {
        "kind": "combo",
        "policies": [fixed(1000), {"kind": "time_stop", "max_hold_ms": M, "take_profit_bps": 5000}],
    }
    row = impl.trade([FLAT0, (1, 1.0, 2.0, 0.5, 1.0)], policy)
    check(row, {"exit_reason": "time_stop", "ambiguous": False, "optimistic_return_bps": 0.0})


# ---------------------------------------------------------------- drill-down (5m run, 1m bars)

# Minutes 0..4: a quiet 5m entry bar (open 1.0, high 1.02, low 0.97). Minutes 5..9 make one
# 5m bar (open 1.0, high 1.6, low 0.85) that reaches S = 0.9 and L = 1.5: ambiguous at 5m.
QUIET = [(i, 1.0, 1.02, 0.97, 1.0) for i in range(5)]
TP_FIRST = [
    (5, 1.0, 1.1, 0.99, 1.05),
    (6, 1.05, 1.6, 1.0, 1.3),  # L = 1.5 inside this minute
    (7, 1.3, 1.35, 0.95, 1.0),
    (8, 1.0, 1.0, 0.85, 0.9),  # S = 0.9 two minutes later
    (9, 0.9, 0.95, 0.88, 0.92),
]
STOP_FIRST = [
    (5, 1.0, 1.1, 0.99, 1.05),
    (6, 1.05, 1.1, 0.85, 0.9),  # S = 0.9 inside this minute
    (7, 0.9, 1.35, 0.9, 1.3),
    (8, 1.3, 1.6, 1.2, 1.5),  # L = 1.5 two minutes later
    (9, 1.5, 1.5, 0.88, 0.92),
]
BOTH_IN_ONE_MINUTE = [
    (5, 1.0, 1.1, 0.99, 1.05),
    (6, 1.05, 1.6, 0.85, 1.3),  # S and L inside the same minute
    (7, 1.3, 1.35, 0.95, 1.0),
    (8, 1.0, 1.0, 0.9, 0.9),
    (9, 0.9, 0.95, 0.88, 0.92),
]


def test_5m_resampled_bar_puts_stop_before_take_profit(impl: Impl) -> None:
    # 1m: TP 1.5 at minute 6 comes before the low 0.85 at minute 8 -> +5000.
    # 5m without 1m bars to drill into: minutes 5..9 make one bar (open 1.0, high 1.6, low
    # 0.85): stop first -> -1000, and the bar is ambiguous (optimistic +5000).
    bars = QUIET + TP_FIRST
    one = impl.trade(bars, fixed(1000, 5000), interval="1m")
    check(one, {"exit_reason": "take_profit", "exit_px": 1.5, "exit_ts_ms": 6})
    check(one, {"ambiguous": False, "ambiguity_resolved": False})
    five = impl.trade(bars, fixed(1000, 5000), interval="5m")
    check(
        five,
        {
            "exit_reason": "stop_loss",
            "exit_px": 0.9,
            "exit_ts_ms": 5,
            "ambiguous": True,
            "ambiguity_resolved": False,
            "optimistic_return_bps": 5000.0,
        },
    )


def test_drill_down_resolves_take_profit_first(impl: Impl) -> None:
    # The 1m bars of the ambiguous 5m bar, in order: minute 6 reaches L = 1.5 (its open 1.05
    # is under it, its low 1.0 over S) before any minute reaches S: take profit at 1.5.
    # exit_ts_ms stays the 5m bar's (minute 5). MAE: 5m bar 0's low 0.97 (-300), then the
    # 1m lows up to the deciding minute 6: 0.99, 1.0 (an intrabar TP keeps the low) -> -300.
    bars = QUIET + TP_FIRST
    row = impl.trade(bars, fixed(1000, 5000), interval="5m", fine=candles(bars))
    check(
        row,
        {
            "exit_reason": "take_profit",
            "exit_px": 1.5,
            "exit_ts_ms": 5,
            "realized_return_bps": 5000.0,
            "stop_out": False,
            "max_adverse_excursion_bps": -300.0,
            "ambiguous": False,
            "ambiguity_resolved": True,
            "optimistic_return_bps": 5000.0,
        },
    )


def test_drill_down_resolves_stop_first(impl: Impl) -> None:
    # Minute 6 reaches S = 0.9 (low 0.85, high 1.1 < L) before minute 8 reaches L: the stop
    # at 0.9 stands, now proven: resolved, not ambiguous, optimistic = realized = -1000.
    bars = QUIET + STOP_FIRST
    row = impl.trade(bars, fixed(1000, 5000), interval="5m", fine=candles(bars))
    check(
        row,
        {
            "exit_reason": "stop_loss",
            "exit_px": 0.9,
            "exit_ts_ms": 5,
            "realized_return_bps": -1000.0,
            "stop_out": True,
            "max_adverse_excursion_bps": -1000.0,
            "ambiguous": False,
            "ambiguity_resolved": True,
            "optimistic_return_bps": -1000.0,
        },
    )


def test_drill_down_still_ambiguous_inside_one_minute(impl: Impl) -> None:
    # Minute 6 holds both S (low 0.85) and L (high 1.6) above and below its open 1.05: the
    # 1m bars cannot tell either. The 5m pessimistic result stands, still ambiguous.
    bars = QUIET + BOTH_IN_ONE_MINUTE
    row = impl.trade(bars, fixed(1000, 5000), interval="5m", fine=candles(bars))
    check(
        row,
        {
            "exit_reason": "stop_loss",
            "exit_px": 0.9,
            "exit_ts_ms": 5,
            "ambiguous": True,
            "ambiguity_resolved": False,
            "optimistic_return_bps": 5000.0,
        },
    )


def test_drill_down_without_1m_bars_in_the_coarse_bar(impl: Impl) -> None:
    # The 1m store given for the drill-down lacks minutes 5..9: nothing to replay, the 5m
    # pessimistic result stands, still ambiguous and not resolved.
    bars = QUIET + TP_FIRST
    row = impl.trade(bars, fixed(1000, 5000), interval="5m", fine=candles(QUIET))
    check(
        row,
        {
            "exit_reason": "stop_loss",
            "ambiguous": True,
            "ambiguity_resolved": False,
            "optimistic_return_bps": 5000.0,
        },
    )


def test_drill_down_ladder_in_minute_order(impl: Impl) -> None:
    # Ladder 1.2 x 0.5, 1.5 x 0.5, S = 0.9. The 5m bar of minutes 5..9 (open 1.0, high 1.6,
    # low 0.85) is ambiguous. Minute order: minute 6 reaches 1.5 (high 1.6) and 1.2 in the same
    # minute, no stop (low 1.0): both levels fill intrabar, the ladder completes:
    # 0.5 * 1.2 + 0.5 * 1.5 = 1.35 -> +3500, ladder_complete, resolved.
    policy = {
        "kind": "ladder",
        "levels": [{"multiple": 1.2, "fraction": 0.5}, {"multiple": 1.5, "fraction": 0.5}],
        "stop_loss_bps": 1000,
    }
    bars = QUIET + TP_FIRST
    row = impl.trade(bars, policy, interval="5m", fine=candles(bars))
    check(
        row,
        {
            "exit_reason": "ladder_complete",
            "exit_px": 1.35,
            "exit_ts_ms": 5,
            "realized_return_bps": 3500.0,
            "ambiguous": False,
            "ambiguity_resolved": True,
        },
    )


def test_drill_down_is_not_used_at_1m(impl: Impl) -> None:
    # A 1m run has no coarser bar to drill into: ambiguity_resolved is always false.
    bars = QUIET + BOTH_IN_ONE_MINUTE
    row = impl.trade(bars, fixed(1000, 5000), interval="1m", fine=candles(bars))
    check(row, {"ambiguous": True, "ambiguity_resolved": False, "exit_ts_ms": 6})


# ---------------------------------------------------------------- window_complete


@pytest.mark.parametrize(
    ("last_minute", "complete"),
    [
        (3, True),  # a bar at alert + horizon exactly: the data runs past the window
        (62, True),  # 59 minutes after the horizon: within the one-hour probe
        (63, False),  # 60 minutes after: outside the probe, read as cut short
        (2, False),  # the data ends inside the window
    ],
)
def test_window_complete(impl: Impl, last_minute: int, complete: bool) -> None:
    # horizon 3 min: W = minutes 0..2; the bar at `last_minute` says whether data goes on.
    bars = [FLAT0, (1, 1.0, 1.1, 0.95, 1.0), (2, 1.0, 1.1, 0.95, 1.0)]
    if last_minute > 2:
        bars.append((last_minute, 5.0, 9.0, 0.1, 5.0))  # never read by any metric
    row = impl.trade(bars, fixed(1000), horizon_ms=3 * M)
    check(
        row,
        {"window_complete": complete, "exit_reason": "end_of_window", "exit_px": 1.0},
    )
    path = impl.path(bars, horizon_ms=3 * M)
    assert path["window_complete"] is complete
    assert path["peak_multiple"] == pytest.approx(1.1)  # the bar past the horizon is not read


def test_ladder_complete_ends_the_trade(impl: Impl) -> None:
    # Levels 1.5 x 0.5 and 2.0 x 0.5. Bar 1 fills 1.5 intrabar; bar 2 opens at 2.1 >= 2.0
    # and fills there. Fractions sum to 1: ladder_complete at bar 2; bar 3's crash is
    # after the trade. exit_px = 0.5 * 1.5 + 0.5 * 2.1 = 1.8 -> +8000. The last fill is
    # at the open, so bar 2's low 1.9 is replaced by 2.1; MAE = bar 1's 0.9 -> -1000.
    policy = {
        "kind": "ladder",
        "levels": [{"multiple": 1.5, "fraction": 0.5}, {"multiple": 2.0, "fraction": 0.5}],
    }
    bars = [FLAT0, (1, 1.0, 1.6, 0.9, 1.55), (2, 2.1, 2.3, 1.9, 2.2), (3, 2.2, 2.2, 0.1, 0.2)]
    row = impl.trade(bars, policy)
    check(
        row,
        {
            "exit_reason": "ladder_complete",
            "exit_px": 1.8,
            "exit_ts_ms": 2,
            "realized_return_bps": 8000.0,
            "stop_out": False,
            "max_adverse_excursion_bps": -1000.0,
            "tail_capture": 8000.0 / 13000.0,  # peak 2.3 (bar 3 is after the exit but in W)
        },
    )


def test_ladder_last_fill_intrabar_keeps_the_low(impl: Impl) -> None:
    # Levels 1.2 x 0.5 and 2.0 x 0.5. Bar 1 opens at 1.5 >= 1.2 (fill at the open 1.5)
    # and reaches 2.0 intrabar (fill at 2.0): complete, exit_px = 0.75 + 1.0 = 1.75.
    # Fills at the open come before intrabar ones, so the last fill is the intrabar
    # take profit, which keeps bar 1's low 0.9: MAE = -1000 (not -500 from bar 0).
    policy = {
        "kind": "ladder",
        "levels": [{"multiple": 1.2, "fraction": 0.5}, {"multiple": 2.0, "fraction": 0.5}],
    }
    row = impl.trade([(0, 1.0, 1.1, 0.95, 1.0), (1, 1.5, 2.2, 0.9, 2.1)], policy)
    check(
        row,
        {
            "exit_reason": "ladder_complete",
            "exit_px": 1.75,
            "exit_ts_ms": 1,
            "max_adverse_excursion_bps": -1000.0,
        },
    )


def test_ladder_complete_within_1e9(impl: Impl) -> None:
    # Ten fractions of 0.1 sum to 0.9999999999999999 (not exactly 1): complete within 1e-9.
    # Levels 1.1 .. 2.0 all fill intrabar in bar 1 (high 2.5): exit_px = mean = 1.55.
    levels = [{"multiple": 1 + k / 10, "fraction": 0.1} for k in range(1, 11)]
    assert sum(lv["fraction"] for lv in levels) != 1.0
    row = impl.trade(
        # bar 0's high 1.05 stays under the lowest level 1.1
        [(0, 1.0, 1.05, 0.95, 1.0), (1, 1.0, 2.5, 0.97, 2.4), (2, 2.4, 2.4, 0.2, 0.3)],
        {"kind": "ladder", "levels": levels},
    )
    check(
        row,
        {"exit_reason": "ladder_complete", "exit_px": 1.55, "exit_ts_ms": 1},
    )
    # intrabar fills keep bar 1's low 0.97: MAE = min(-500, -300) = -500
    check(row, {"max_adverse_excursion_bps": -500.0})


def test_ladder_incomplete_rides_to_end_of_window(impl: Impl) -> None:
    # Fractions 0.4 + 0.4 = 0.8: both fill in bar 1 (1.5, 2.0), the other 0.2 rides to
    # the end: bar 2's close 1.0. exit_px = 0.6 + 0.8 + 0.2 = 1.6 -> +6000.
    policy = {
        "kind": "ladder",
        "levels": [{"multiple": 1.5, "fraction": 0.4}, {"multiple": 2.0, "fraction": 0.4}],
    }
    row = impl.trade([FLAT0, (1, 1.0, 2.1, 0.96, 2.0), (2, 2.0, 2.05, 0.9, 1.0)], policy)
    check(
        row,
        {
            "exit_reason": "end_of_window",
            "exit_px": 1.6,
            "exit_ts_ms": 2,
            "realized_return_bps": 6000.0,
            "stop_out": False,
            "max_adverse_excursion_bps": -1000.0,  # bar 2's low 0.9 kept (close fill)
        },
    )


def test_ladder_unfilled_level_rides_to_end(impl: Impl) -> None:
    # 1.5 x 0.5 fills in bar 1; 3.0 x 0.5 never does: the rest exits at bar 2's close 1.2.
    # exit_px = 0.75 + 0.6 = 1.35.
    policy = {
        "kind": "ladder",
        "levels": [{"multiple": 1.5, "fraction": 0.5}, {"multiple": 3.0, "fraction": 0.5}],
    }
    row = impl.trade([FLAT0, (1, 1.0, 1.7, 0.96, 1.6), (2, 1.6, 1.65, 1.1, 1.2)], policy)
    check(row, {"exit_reason": "end_of_window", "exit_px": 1.35, "exit_ts_ms": 2})


def test_combo_earliest_exit(impl: Impl) -> None:
    # fixed_stop (S = 0.5, L = 3.0) + time_stop 2 min: bar 2 reaches t0 + 2 min first.
    policy = {
        "kind": "combo",
        "policies": [fixed(5000, 20000), {"kind": "time_stop", "max_hold_ms": 2 * M}],
    }
    bars = [FLAT0, (1, 1.0, 1.2, 0.9, 1.1), (2, 1.15, 1.3, 1.1, 1.2), (3, 1.2, 4.0, 1.2, 3.5)]
    row = impl.trade(bars, policy)
    check(row, {"exit_reason": "time_stop", "exit_px": 1.15, "exit_ts_ms": 2})


def test_combo_earliest_time_stop_wins(impl: Impl) -> None:
    # Holds of 5 and 2 minutes: the 2-minute one falls due first, at bar 2's open 1.15.
    policy = {
        "kind": "combo",
        "policies": [
            {"kind": "time_stop", "max_hold_ms": 5 * M},
            {"kind": "time_stop", "max_hold_ms": 2 * M, "take_profit_bps": 90000},
        ],
    }
    bars = [FLAT0] + [(i, 1.15, 1.2, 1.1, 1.15) for i in range(1, 7)]
    check(impl.trade(bars, policy), {"exit_reason": "time_stop", "exit_ts_ms": 2, "exit_px": 1.15})


def test_combo_lowest_take_profit_wins(impl: Impl) -> None:
    # TPs at 2.0 (fixed_stop) and 1.5 (time_stop) both fire in bar 1 (high 2.5): 1.5 wins.
    policy = {
        "kind": "combo",
        "policies": [
            fixed(5000, 10000),
            {"kind": "time_stop", "max_hold_ms": 100 * M, "take_profit_bps": 5000},
        ],
    }
    row = impl.trade([FLAT0, (1, 1.0, 2.5, 0.96, 2.2)], policy)
    check(row, {"exit_reason": "take_profit", "exit_px": 1.5, "realized_return_bps": 5000.0})


def test_combo_stops_highest_level_and_nesting(impl: Impl) -> None:
    # Nested combos flatten. S = 0.7, H = 0.5, trail: bar 0 arms (1.2 >= 1.1), peak 1.2,
    # T = 1.2 * 0.9 = 1.08. Bar 1's low 0.6 fires S and T (not H); highest is T = 1.08.
    trail = {"kind": "trailing_stop", "activation_bps": 1000, "trail_bps": 1000}
    policy = {
        "kind": "combo",
        "policies": [
            {"kind": "combo", "policies": [fixed(3000)]},
            {**trail, "hard_stop_bps": 5000},
        ],
    }
    row = impl.trade([(0, 1.0, 1.2, 0.95, 1.1), (1, 1.1, 1.15, 0.6, 0.65)], policy)
    check(
        row,
        {"exit_reason": "trailing_stop", "exit_px": 1.08, "realized_return_bps": 800.0},
    )


# ---------------------------------------------------------------- validation


def _parse() -> Any:
    from quantbot_assets.engine import parse_policy

    return parse_policy


LEVEL = {"multiple": 2.0, "fraction": 0.5}


@pytest.mark.parametrize(
    ("policy", "field"),
    [
        ({"kind": "moon"}, "kind"),
        ({"stop_loss_bps": 500}, "kind"),
        ({"kind": "fixed_stop"}, "stop_loss_bps"),
        ({"kind": "fixed_stop", "stop_loss_bps": -1}, "stop_loss_bps"),
        ({"kind": "fixed_stop", "stop_loss_bps": 10000}, "stop_loss_bps"),
        ({"kind": "fixed_stop", "stop_loss_bps": 12000}, "stop_loss_bps"),
        ({"kind": "fixed_stop", "stop_loss_bps": 500, "take_profit_bps": -5}, "take_profit_bps"),
        ({"kind": "fixed_stop", "stop_loss_bps": 500, "stop_loss_pct": 5}, "stop_loss_pct"),
        ({"kind": "time_stop"}, "max_hold_ms"),
        ({"kind": "time_stop", "max_hold_ms": -1}, "max_hold_ms"),
        ({"kind": "trailing_stop", "activation_bps": 100}, "trail_bps"),
        ({"kind": "trailing_stop", "activation_bps": -1, "trail_bps": 100}, "activation_bps"),
        ({"kind": "trailing_stop", "activation_bps": 0, "trail_bps": 10000}, "trail_bps"),
        (
            {"kind": "trailing_stop", "activation_bps": 0, "trail_bps": 100, "hard_stop_bps": 1e4},
            "hard_stop_bps",
        ),
        ({"kind": "ladder"}, "levels"),
        ({"kind": "ladder", "levels": [{"multiple": 2.0}]}, "fraction"),
        ({"kind": "ladder", "levels": [{"fraction": 0.5}]}, "multiple"),
        ({"kind": "ladder", "levels": [{"multiple": -2.0, "fraction": 0.5}]}, "multiple"),
        ({"kind": "ladder", "levels": [{"multiple": 0.0, "fraction": 0.5}]}, "multiple"),
        ({"kind": "ladder", "levels": [{"multiple": 2.0, "fraction": -0.1}]}, "fraction"),
        (
            {"kind": "ladder", "levels": [LEVEL, LEVEL, {"multiple": 3.0, "fraction": 0.2}]},
            "fraction",
        ),
        ({"kind": "ladder", "levels": [LEVEL], "stop_loss_bps": 10000}, "stop_loss_bps"),
        ({"kind": "ladder", "levels": [{**LEVEL, "size": 1}]}, "size"),
        (
            {"kind": "combo", "policies": [{"kind": "fixed_stop", "stop_loss_bps": -5}]},
            "stop_loss_bps",
        ),
        ({"kind": "combo"}, "policies"),
    ],
)
def test_invalid_policy_names_the_field(policy: dict[str, Any], field: str) -> None:
    parse_policy = _parse()
    with pytest.raises(ValueError, match=field):
        parse_policy(policy)
    with pytest.raises(ValueError, match=field):  # the JSON text form too
        parse_policy(json.dumps(policy))


def test_simulate_rejects_an_invalid_policy() -> None:
    from quantbot_assets.engine import simulate_policy

    bad = {"kind": "trailing_stop", "activation_bps": 100, "trail_bps": -1}
    with pytest.raises(ValueError, match="trail_bps"):
        simulate_policy(alerts(("c1", BASE)), candles([FLAT0]), bad, policy_id="p")


def test_combo_may_not_hold_a_ladder() -> None:
    parse_policy = _parse()
    with pytest.raises(ValueError, match="ladder"):
        parse_policy({"kind": "combo", "policies": [{"kind": "ladder", "levels": [LEVEL]}]})


def test_not_json_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        _parse()("{not json")


@pytest.mark.parametrize(
    "policy",
    [
        fixed(0),
        fixed(9999, 0),
        {"kind": "time_stop", "max_hold_ms": 0},
        {"kind": "trailing_stop", "activation_bps": 0, "trail_bps": 9999.5, "hard_stop_bps": 0},
        {"kind": "ladder", "levels": [LEVEL, LEVEL], "stop_loss_bps": 500},
        {"kind": "ladder", "levels": [{"multiple": 0.5, "fraction": 0.0}]},
        {"kind": "combo", "policies": [{"kind": "combo", "policies": [fixed(100)]}, TRAIL]},
    ],
)
def test_valid_policies_parse(policy: dict[str, Any]) -> None:
    parse_policy = _parse()
    parse_policy(policy)
    parse_policy(json.dumps(policy))
