"""The engine against the slow reference of docs/semantics.md on a few thousand
generated calls: every column of paths and trades, exact for ints, bools and
strings, within 1e-9 relative for floats.

The market has gaps, NaN/zero/negative prices and high < low bars (never in
the close, whose use on a NaN is not defined), pumps and rugs, several calls
per mint at aligned and unaligned times, calls before and after the candles,
calls on a mint with no candles and on another chain."""

from __future__ import annotations

import math
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantbot_assets import schemas
from quantbot_assets_tests.engine import reference
from quantbot_assets_tests.engine.conftest import BASE, CHAIN, M, engine_impl
from quantbot_assets_tests.engine.test_properties import SETTINGS, market, policies

HORIZON_MS = 180 * M
CALLERS = ["ann", "bo", "cy", "di", "ed"]
POLICIES: dict[str, dict[str, Any]] = {
    "fixed": {"kind": "fixed_stop", "stop_loss_bps": 1500, "take_profit_bps": 8000},
    "tight": {"kind": "fixed_stop", "stop_loss_bps": 500},
    "time": {"kind": "time_stop", "max_hold_ms": 30 * M, "take_profit_bps": 3000},
    "trail": {
        "kind": "trailing_stop",
        "activation_bps": 2000,
        "trail_bps": 1500,
        "hard_stop_bps": 3000,
    },
    "trail0": {"kind": "trailing_stop", "activation_bps": 0, "trail_bps": 500},
    "ladder": {
        "kind": "ladder",
        "levels": [
            {"multiple": 1.5, "fraction": 0.3},
            {"multiple": 2.0, "fraction": 0.3},
            {"multiple": 3.0, "fraction": 0.4},
        ],
        "stop_loss_bps": 4000,
    },
    "ladder_part": {
        "kind": "ladder",
        "levels": [{"multiple": 1.2, "fraction": 0.25}, {"multiple": 2.5, "fraction": 0.25}],
    },
    # unsorted levels, one at or under p0 (fills at the entry open), sum exactly 1
    "ladder_odd": {
        "kind": "ladder",
        "levels": [
            {"multiple": 3.0, "fraction": 0.2},
            {"multiple": 0.9, "fraction": 0.3},
            {"multiple": 1.5, "fraction": 0.5},
        ],
        "stop_loss_bps": 2500,
    },
    # two trails armed at different heights, a hard stop and a far take profit
    "combo_trails": {
        "kind": "combo",
        "policies": [
            {"kind": "trailing_stop", "activation_bps": 1000, "trail_bps": 3000},
            {
                "kind": "trailing_stop",
                "activation_bps": 4000,
                "trail_bps": 1000,
                "hard_stop_bps": 4500,
            },
            {"kind": "fixed_stop", "stop_loss_bps": 5000, "take_profit_bps": 30000},
        ],
    },
    "combo": {
        "kind": "combo",
        "policies": [
            {"kind": "fixed_stop", "stop_loss_bps": 2000, "take_profit_bps": 20000},
            {
                "kind": "combo",
                "policies": [
                    {"kind": "time_stop", "max_hold_ms": 60 * M, "take_profit_bps": 4000},
                    {"kind": "trailing_stop", "activation_bps": 5000, "trail_bps": 2500},
                ],
            },
        ],
    },
}


def generate(
    seed: int, n_mints: int, calls_per_mint: int, corrupt: bool
) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    candle_rows: list[tuple[Any, ...]] = []
    call_rows: list[tuple[Any, ...]] = []
    for i in range(n_mints):
        mint = f"M{i:04d}"
        start = BASE + int(rng.integers(0, 300)) * M
        length = int(rng.integers(3, 400))
        density = rng.choice([0.95, 0.7, 0.3])
        price = float(10 ** rng.uniform(-6, 2))
        for minute in range(length):
            if rng.random() > density:
                continue  # no trade in that minute: no bar
            o = price * (1 if rng.random() < 0.8 else float(rng.uniform(0.8, 1.25)))
            r = rng.normal(0, 0.03)
            if rng.random() < 0.02:
                r += math.log(rng.uniform(1.5, 5.0))  # pump
            if rng.random() < 0.01:
                r += math.log(rng.uniform(0.02, 0.5))  # rug
            c = o * math.exp(r)
            h = max(o, c) * math.exp(abs(rng.normal(0, 0.02)))
            if rng.random() < 0.03:
                h *= rng.uniform(1.0, 4.0)  # wick
            lo = min(o, c) * math.exp(-abs(rng.normal(0, 0.02)))
            if rng.random() < 0.03:
                lo *= rng.uniform(0.2, 1.0)
            if corrupt and rng.random() < 0.03:
                kind = int(rng.integers(0, 7))
                if kind == 0:
                    o = math.nan
                elif kind == 1:
                    o = 0.0
                elif kind == 2:
                    o = -o
                elif kind == 3:
                    h = math.nan
                elif kind == 4:
                    lo = 0.0
                elif kind == 5:
                    lo = -1.0
                else:
                    h, lo = lo * 0.9, h * 1.1  # high < low
            candle_rows.append((CHAIN, mint, "1m", start + minute * M, o, h, lo, c, 1.0))
            price = c
        for k in range(calls_per_mint):
            at = start + int(rng.integers(-60, length + 30)) * M
            if rng.random() < 0.5:
                at += int(rng.integers(1, M))  # not on a bar open
            chain = CHAIN if rng.random() > 0.02 else "ethereum"
            the_mint = mint if rng.random() > 0.02 else "NO_CANDLES"
            caller = CALLERS[int(rng.integers(0, len(CALLERS)))]
            call_rows.append((f"{mint}-{k}", the_mint, caller, chain, at, ""))
    candles = pd.DataFrame(
        candle_rows,
        columns=["chain", "mint", "interval", "ts_ms", "open", "high", "low", "close", "volume"],
    )
    # The engine may not rely on sorted input.
    candles = candles.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    alerts = pd.DataFrame(
        call_rows,
        columns=["call_id", "mint", "caller_name", "chain", "alert_ts_ms", "created_at"],
    )
    return alerts, candles


@cache
def market_1m() -> tuple[pd.DataFrame, pd.DataFrame]:
    """About 3000 calls on 300 mints, with malformed bars."""
    alerts, candles = generate(20261121, n_mints=300, calls_per_mint=10, corrupt=True)
    # Calls whose W has no proven high or no proven low have no defined peak or
    # drawdown (a max over nothing): the specification is silent, so leave them out.
    keep = _defined_calls(alerts, candles, "1m", 0) & _defined_calls(alerts, candles, "1m", 90_000)
    return alerts[alerts["call_id"].isin(keep)].reset_index(drop=True), candles


@cache
def market_5m() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Clean 1m bars for a 5m run (resampling of malformed bars is not specified)."""
    return generate(777, n_mints=80, calls_per_mint=8, corrupt=False)


def _defined_calls(
    alerts: pd.DataFrame, candles: pd.DataFrame, interval: str, delay: int
) -> set[str]:
    series = reference.bars_by_series(candles, interval)
    keep = set()
    for a in alerts.to_dict("records"):
        entry = reference.entry_for(
            series.get((a["chain"], a["mint"]), []), int(a["alert_ts_ms"]), HORIZON_MS, delay
        )
        if entry.excluded is not None or _truth_defined(entry.window):
            keep.add(a["call_id"])
    return keep


@cache
def series_1m() -> reference.Series:
    return reference.bars_by_series(market_1m()[1], "1m")


@cache
def reference_trades_1m(policy_id: str, delay: int, fee: float, slip: float) -> pd.DataFrame:
    alerts, candles = market_1m()
    return reference.reference_trades(
        alerts,
        candles,
        POLICIES[policy_id],
        policy_id=policy_id,
        interval="1m",
        horizon_ms=HORIZON_MS,
        entry_delay_ms=delay,
        fee_bps=fee,
        slippage_bps=slip,
        run_id="cmp",
        series=series_1m(),
    )


def _truth_defined(window: list[reference.Bar]) -> bool:
    if not reference.truth_is_defined(window):
        return False
    p0 = window[0].open
    first_2x = next((i for i, b in enumerate(window) if b.high >= 2 * p0), None)
    return first_2x is None or any(not math.isnan(b.low) for b in window[: first_2x + 1])


def _null(v: Any) -> bool:
    return v is None or (not isinstance(v, str) and bool(pd.isna(v)))


def same(a: Any, b: Any) -> bool:
    if _null(a) or _null(b):
        return _null(a) and _null(b)
    if isinstance(b, float) or isinstance(a, float | np.floating):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(b, bool | np.bool_):
        return bool(a) == bool(b)
    if isinstance(b, int | np.integer):
        return int(a) == int(b)
    return a == b


def compare(got: pd.DataFrame, want: pd.DataFrame, columns: list[str], what: str) -> None:
    assert list(got.columns) == columns, what
    got = got.sort_values("call_id").reset_index(drop=True)
    want = want.sort_values("call_id").reset_index(drop=True)
    assert got["call_id"].tolist() == want["call_id"].tolist(), what
    bad = []
    for col in columns:
        for cid, g, w in zip(want["call_id"], got[col], want[col], strict=True):
            if not same(g, w):
                bad.append(f"{col} {cid}: engine {g!r} reference {w!r}")
    assert not bad, f"{what}: {len(bad)} mismatches, first: " + "; ".join(bad[:8])


@pytest.mark.parametrize("delay", [0, 90_000])
def test_paths_match_reference(delay: int) -> None:
    alerts, candles = market_1m()
    assert len(alerts) > 2500  # a few thousand calls, most entered
    kw: dict[str, Any] = {
        "interval": "1m",
        "horizon_ms": HORIZON_MS,
        "entry_delay_ms": delay,
        "activity_move_bps": 1000,
        "run_id": "cmp",
    }
    paths, excluded = engine_impl().compute_paths(alerts, candles, **kw)
    want_paths, want_excluded = reference.reference_paths(alerts, candles, **kw, series=series_1m())
    assert set(want_excluded["reason"]) == {"no_candles", "invalid_entry_price"}
    assert len(want_paths) > 2000
    compare(paths, want_paths, schemas.PATHS.names, f"paths delay={delay}")
    assert sorted(map(tuple, excluded[["call_id", "reason"]].to_numpy().tolist())) == sorted(
        map(tuple, want_excluded.to_numpy().tolist())
    )


@pytest.mark.parametrize(
    ("policy_id", "delay", "fee", "slip"),
    [(pid, 0, 0.0, 0.0) for pid in POLICIES]
    + [("fixed", 90_000, 25.0, 50.0), ("ladder", 90_000, 25.0, 50.0), ("combo", 0, 10.0, 30.0)],
)
def test_trades_match_reference(policy_id: str, delay: int, fee: float, slip: float) -> None:
    alerts, candles = market_1m()
    kw: dict[str, Any] = {
        "policy_id": policy_id,
        "interval": "1m",
        "horizon_ms": HORIZON_MS,
        "entry_delay_ms": delay,
        "fee_bps": fee,
        "slippage_bps": slip,
        "run_id": "cmp",
    }
    trades = engine_impl().simulate_policy(alerts, candles, POLICIES[policy_id], **kw)
    want = reference_trades_1m(policy_id, delay, fee, slip)
    compare(trades, want, schemas.TRADES.names, f"trades {policy_id} delay={delay}")


@pytest.mark.parametrize("policy_id", ["fixed", "ladder", "combo"])
def test_summary_of_reference_trades(policy_id: str) -> None:
    from quantbot_assets.engine import summarize

    alerts, _ = market_1m()
    trades = reference_trades_1m(policy_id, 0, 0.0, 0.0)
    excluded = len(alerts) - len(trades)
    got = summarize(trades, len(alerts), excluded).iloc[0].to_dict()
    want = reference.reference_summary(trades, len(alerts), excluded)
    for key, value in want.items():
        assert same(got[key], value), (key, got[key], value)


@pytest.mark.parametrize(
    ("policy_id", "delay", "drill"),
    # 7 min: the delay ends inside a 5m bar, whose open is then before it
    [
        ("fixed", 0, False),
        ("fixed", 420_000, False),
        ("trail", 0, False),
        ("ladder", 420_000, False),
        # with the 1m bars for the drill-down of ambiguous 5m bars
        ("fixed", 0, True),
        ("ladder", 0, True),
        ("ladder_odd", 420_000, True),
        ("combo_trails", 0, True),
        ("combo", 0, True),
    ],
)
def test_5m_run_matches_reference(policy_id: str, delay: int, drill: bool) -> None:
    alerts, candles = market_5m()
    kw: dict[str, Any] = {
        "interval": "5m",
        "horizon_ms": HORIZON_MS,
        "entry_delay_ms": delay,
        "run_id": "cmp5",
    }
    impl = engine_impl()
    if policy_id == "fixed" and not drill:  # paths once per delay
        paths, _ = impl.compute_paths(alerts, candles, **kw)
        want_paths, _ = reference.reference_paths(alerts, candles, **kw)
        compare(paths, want_paths, schemas.PATHS.names, f"paths 5m delay={delay}")
    if drill:
        kw["fine"] = candles
    trades = impl.simulate_policy(alerts, candles, POLICIES[policy_id], policy_id=policy_id, **kw)
    want = reference.reference_trades(
        alerts, candles, POLICIES[policy_id], policy_id=policy_id, **kw
    )
    compare(trades, want, schemas.TRADES.names, f"trades 5m {policy_id} delay={delay}")
    if drill:  # the drill-down had something to do on this market
        assert want["ambiguity_resolved"].any()
        assert trades.attrs["drilldown"]["resolved_bars"] == int(want["ambiguity_resolved"].sum())


def test_frontier_matches_reference() -> None:
    # search_frontier may evaluate a grid its own way (e.g. all fixed stops in one
    # pass); its rows must still be the summaries of the reference trades, per caller
    # and overall, on the malformed market.
    from quantbot_assets.engine import search_frontier

    alerts, candles = market_1m()
    grid_ids = ["fixed", "tight", "fixed_wide", "trail", "ladder"]
    policies = {**POLICIES, "fixed_wide": {"kind": "fixed_stop", "stop_loss_bps": 9000}}
    frontier = search_frontier(
        alerts,
        candles,
        {pid: policies[pid] for pid in grid_ids},
        min_trades=1,
        interval="1m",
        horizon_ms=HORIZON_MS,
        run_id="cmp",
    ).set_index(["caller_name", "policy_id"])
    for pid in grid_ids:
        if pid in POLICIES:
            trades = reference_trades_1m(pid, 0, 0.0, 0.0)
        else:
            trades = reference.reference_trades(
                alerts,
                candles,
                policies[pid],
                policy_id=pid,
                horizon_ms=HORIZON_MS,
                series=series_1m(),
            )
        groups = {"__all__": trades, **dict(iter(trades.groupby("caller_name")))}
        assert len(groups) == len(CALLERS) + 1
        for caller, group in groups.items():
            want = reference.reference_summary(group, len(group), 0)
            row = frontier.loc[(caller, pid)]
            for col in (
                "trades_count",
                "avg_return_bps",
                "median_return_bps",
                "stop_out_rate",
                "avg_max_adverse_excursion_bps",
                "avg_optimistic_return_bps",
                "median_optimistic_return_bps",
                "ambiguous_trade_rate",
            ):
                assert same(row[col], want[col]), (caller, pid, col, row[col], want[col])
            assert same(row["objective_score"], want["median_return_bps"])


@settings(SETTINGS, max_examples=40)
@given(
    data=market(corrupt=True),
    policy=policies,
    fee=st.sampled_from([0.0, 12.5]),
    slip=st.sampled_from([0.0, 40.0]),
    delay=st.sampled_from([0, 30_000, 60_000, 150_000]),
    horizon=st.sampled_from([5 * M, 30 * M, 172_800_000]),
)
def test_random_policies_match_reference(
    data: tuple[pd.DataFrame, pd.DataFrame],
    policy: dict[str, Any],
    fee: float,
    slip: float,
    delay: int,
    horizon: int,
) -> None:
    # The fixed set of policies above on a big market, and here any valid policy
    # (random levels, nested combos, odd ladders) on small malformed markets.
    alerts, candles = data
    series = reference.bars_by_series(candles, "1m")
    keep = []
    for a in alerts.to_dict("records"):
        entry = reference.entry_for(
            series.get((a["chain"], a["mint"]), []), a["alert_ts_ms"], horizon, delay
        )
        keep.append(entry.excluded is not None or _truth_defined(entry.window))
    alerts = alerts[keep].reset_index(drop=True)
    kw: dict[str, Any] = {"horizon_ms": horizon, "entry_delay_ms": delay, "run_id": "h"}
    impl = engine_impl()
    paths, excluded = impl.compute_paths(alerts, candles, **kw)
    want_paths, want_excluded = reference.reference_paths(alerts, candles, **kw)
    compare(paths, want_paths, schemas.PATHS.names, f"paths {kw}")
    assert sorted(excluded["call_id"]) == sorted(want_excluded["call_id"])
    kw.update(policy_id="p", fee_bps=fee, slippage_bps=slip)
    trades = impl.simulate_policy(alerts, candles, policy, **kw)
    want = reference.reference_trades(alerts, candles, policy, **kw)
    compare(trades, want, schemas.TRADES.names, f"trades {policy} {kw}")
