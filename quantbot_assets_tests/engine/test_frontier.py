"""search_frontier: the one-pass fixed_stop grid and the per-policy replays equal one-by-one
simulate_policy exactly; scores, constraints, Pareto flags and ranks follow SEMANTICS."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from quantbot_assets import schemas
from quantbot_assets.engine import (
    default_grid,
    parse_policy,
    prepare_candles,
    search_frontier,
    simulate_policy,
    summarize,
)
from quantbot_assets.engine.calls import call_arrays
from quantbot_assets.engine.frontier import evaluate_grid
from quantbot_assets.engine.replay import fine_for, trades_frame
from quantbot_assets.engine.windows import complete_flags

M = 60_000
T0 = 1_700_000_040_000


def market(seed: int, n_mints: int = 12, n_bars: int = 240) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Heavy-tailed 1m candles with gaps, NaN fields and an invalid entry; calls by 3 callers."""
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(n_mints):
        r = rng.standard_t(3, n_bars) * 0.03
        if k % 3 == 0:
            r[rng.integers(10, n_bars - 20) :][:10] += 0.12  # a pump
        close = np.exp(np.cumsum(r))
        opn = np.r_[1.0, close[:-1]] * np.exp(rng.normal(0, 0.01, n_bars))
        high = np.maximum(opn, close) * np.exp(np.abs(rng.normal(0, 0.03, n_bars)))
        low = np.minimum(opn, close) * np.exp(-np.abs(rng.normal(0, 0.03, n_bars)))
        high[rng.random(n_bars) < 0.03] = np.nan
        low[rng.random(n_bars) < 0.03] = np.nan
        minutes = np.cumsum(rng.choice([1, 1, 1, 1, 2, 5], n_bars))
        frames.append(
            pd.DataFrame(
                {
                    "chain": "sol",
                    "mint": f"m{k}",
                    "interval": "1m",
                    "ts_ms": T0 + minutes * M,
                    "open": opn,
                    "high": high,
                    "low": low,
                    "close": close,
                    "volume": 1.0,
                }
            )
        )
    candles = pd.concat(frames, ignore_index=True)
    candles.loc[candles.index[5], "open"] = np.nan
    n_calls = 40
    mints = rng.integers(0, n_mints + 1, n_calls)  # mint n_mints has no candles
    alerts = pd.DataFrame(
        {
            "call_id": [f"c{i}" for i in range(n_calls)],
            "mint": [f"m{m}" for m in mints],
            "caller_name": rng.choice(["alice", "bob", "carol"], n_calls),
            "chain": "sol",
            "alert_ts_ms": T0 + rng.integers(-5, 200, n_calls) * M + rng.integers(0, M, n_calls),
        }
    )
    alerts.loc[0, ["mint", "alert_ts_ms"]] = [
        "m0",
        T0 + 1 * M,
    ]  # enters on m0's bar with NaN open? no: bar 5
    return candles, alerts


GRID = {
    **{
        f"fs-{sl}-{tp}": {
            "kind": "fixed_stop",
            "stop_loss_bps": sl,
            **({} if tp is None else {"take_profit_bps": tp}),
        }
        for sl in (0, 300, 1000, 3000, 9000)
        for tp in (None, 0, 500, 2000, 10000)
    },
    "ts": {"kind": "time_stop", "max_hold_ms": 45 * M, "take_profit_bps": 3000},
    "tr": {
        "kind": "trailing_stop",
        "activation_bps": 1000,
        "trail_bps": 500,
        "hard_stop_bps": 2000,
    },
    "ld": {
        "kind": "ladder",
        "levels": [{"multiple": 1.2, "fraction": 0.5}, {"multiple": 1.5, "fraction": 0.3}],
        "stop_loss_bps": 1500,
    },
    "cb": {
        "kind": "combo",
        "policies": [
            {"kind": "trailing_stop", "activation_bps": 500, "trail_bps": 800},
            {"kind": "fixed_stop", "stop_loss_bps": 1200, "take_profit_bps": 4000},
            {"kind": "time_stop", "max_hold_ms": 90 * M},
        ],
    },
}


@pytest.mark.parametrize(
    ("seed", "fee", "slip", "interval", "drill"),
    [
        (1, 0.0, 0.0, "1m", False),
        (2, 25.0, 40.0, "1m", False),
        (4, 0.0, 0.0, "5m", False),
        (4, 10.0, 20.0, "5m", True),  # drill-down into the 1m bars of ambiguous 5m bars
        (5, 0.0, 0.0, "15m", True),
    ],
)
def test_grid_trades_equal_one_by_one_replay_exactly(
    seed: int, fee: float, slip: float, interval: str, drill: bool
) -> None:
    candles, alerts = market(seed)
    prepared, _ = prepare_candles(candles, interval)
    minute, _ = prepare_candles(candles, "1m")
    series, alert_ts = call_arrays(alerts, prepared)
    policies = {pid: parse_policy(p) for pid, p in GRID.items()}
    status, results = evaluate_grid(
        policies,
        prepared,
        series,
        alert_ts,
        entry_delay_ms=30_000,
        horizon_ms=180 * M,
        fee_bps=fee,
        slippage_bps=slip,
        fine=fine_for(minute if drill else None, alerts, interval),
    )
    complete = complete_flags(prepared, series, alert_ts, 180 * M)
    resolved = 0
    for pid, (e, x, reason, stop_out, vals, flags, _) in results.items():
        got = trades_frame(
            alerts, prepared.ts, status, e, x, reason, stop_out, vals, flags, complete, pid, "r"
        )
        want = simulate_policy(
            alerts,
            candles,
            GRID[pid],
            policy_id=pid,
            interval=interval,
            entry_delay_ms=30_000,
            horizon_ms=180 * M,
            fee_bps=fee,
            slippage_bps=slip,
            run_id="r",
            fine=minute if drill else None,
        )
        assert len(want) > 20
        pd.testing.assert_frame_equal(got, want, check_exact=True)
        resolved += int(want["ambiguity_resolved"].sum())
    assert (resolved > 0) == drill


def test_frontier_rows_equal_statistics_of_simulate_policy() -> None:
    candles, alerts = market(3)
    fr = search_frontier(
        alerts, candles, GRID, min_trades=5, horizon_ms=150 * M, fee_bps=10, run_id="run1"
    )
    assert list(fr.columns) == schemas.FRONTIER.names
    assert set(fr["caller_name"]) == {"__all__", "alice", "bob", "carol"}
    assert len(fr) == 4 * len(GRID) and (fr["run_id"] == "run1").all()
    for pid, pol in GRID.items():
        trades = simulate_policy(
            alerts, candles, pol, policy_id=pid, horizon_ms=150 * M, fee_bps=10
        )
        assert json.loads(fr.loc[fr["policy_id"] == pid, "policy_params"].iloc[0]) == json.loads(
            parse_policy(pol).canonical_json()
        )
        for caller in ("__all__", "alice", "bob", "carol"):
            t = trades if caller == "__all__" else trades[trades["caller_name"] == caller]
            row = fr[(fr["policy_id"] == pid) & (fr["caller_name"] == caller)].iloc[0]
            r = t["realized_return_bps"].to_numpy()
            assert row["trades_count"] == len(t)
            assert row["avg_return_bps"] == np.mean(r)
            assert row["median_return_bps"] == np.percentile(r, 50)
            assert row["objective_score"] == row["median_return_bps"]
            assert row["stop_out_rate"] == np.mean(t["stop_out"].to_numpy(dtype=float))
            assert row["avg_max_adverse_excursion_bps"] == np.mean(
                t["max_adverse_excursion_bps"].to_numpy()
            )
            # the optimistic side of the range, exactly as summarize computes it
            s = summarize(t, len(t), 0).iloc[0]
            for col in (
                "avg_optimistic_return_bps",
                "median_optimistic_return_bps",
                "ambiguous_trade_rate",
            ):
                assert row[col] == s[col], (pid, caller, col)


@pytest.mark.parametrize("drill", [False, True])
def test_frontier_of_a_5m_run_with_drill_down(drill: bool) -> None:
    # Ranks stay on the pessimistic side; the optimistic columns bound it from above; the
    # drill-down (1m bars) resolves some ambiguous 5m exits, reported in attrs.
    candles, alerts = market(6)
    fr = search_frontier(
        alerts, candles, GRID, min_trades=1, interval="5m", fine=candles if drill else None
    )
    assert (fr["avg_optimistic_return_bps"] >= fr["avg_return_bps"] - 1e-9).all()
    assert (fr["ambiguous_trade_rate"].between(0, 1)).all()
    info = fr.attrs["drilldown"]
    assert info["ambiguous_bars"] > 0
    assert (info["resolved_bars"] > 0) == drill
    assert (info["fine_bars_read"] > 0) == drill


def test_constraints_pareto_and_rank_follow_their_definitions() -> None:
    candles, alerts = market(4)
    fr = search_frontier(
        alerts, candles, GRID, objective="avg_return_bps", min_trades=8, max_stop_out_rate=0.6
    )
    assert (fr["objective_score"] == fr["avg_return_bps"]).all()
    meets = (fr["trades_count"] >= 8) & (fr["stop_out_rate"] <= 0.6)
    assert (fr["meets_constraints"] == meets).all()
    assert fr["meets_constraints"].any() and not fr["meets_constraints"].all()
    for _caller, g in fr.groupby("caller_name"):
        ok = g[g["meets_constraints"]]
        for i, row in g.iterrows():
            if not row["meets_constraints"]:
                assert not row["pareto"] and pd.isna(row["rank"])
                continue
            dominated = (
                (ok["objective_score"] >= row["objective_score"])
                & (ok["stop_out_rate"] <= row["stop_out_rate"])
                & (
                    (ok["objective_score"] > row["objective_score"])
                    | (ok["stop_out_rate"] < row["stop_out_rate"])
                )
            ).any()
            assert row["pareto"] == (not dominated), i
            assert row["rank"] == 1 + (ok["objective_score"] > row["objective_score"]).sum()
        if len(ok):
            assert ok["rank"].min() == 1 and ok.loc[ok["rank"] == 1, "pareto"].all()


def test_no_trades_give_null_scores_and_no_rank() -> None:
    candles, alerts = market(5)
    far = alerts.assign(alert_ts_ms=T0 + 10**9)
    fr = search_frontier(far, candles, {"a": GRID["tr"]}, min_trades=0)
    assert (fr["trades_count"] == 0).all() and fr["objective_score"].isna().all()
    assert not fr["meets_constraints"].any() and not fr["pareto"].any() and fr["rank"].isna().all()


def test_bad_grid_and_objective_are_refused_before_any_work() -> None:
    candles, alerts = market(6)
    with pytest.raises(ValueError, match=r"grid\['bad'\].*stop_loss_bps"):
        search_frontier(
            alerts,
            candles,
            {"ok": GRID["tr"], "bad": {"kind": "fixed_stop", "stop_loss_bps": 10000}},
        )
    with pytest.raises(ValueError, match="objective"):
        search_frontier(alerts, candles, {"ok": GRID["tr"]}, objective="sharpe")
    with pytest.raises(ValueError, match="grid"):
        search_frontier(alerts, candles, {})
    with pytest.raises(ValueError, match="caller_name"):
        search_frontier(alerts.assign(caller_name="__all__"), candles, {"ok": GRID["tr"]})
    with pytest.raises(ValueError, match="max_stop_out_rate"):
        search_frontier(alerts, candles, {"ok": GRID["tr"]}, max_stop_out_rate=2)


def test_default_grid_covers_every_family_with_readable_ids() -> None:
    grid = default_grid()
    assert grid == default_grid()  # stable
    assert "fixed_stop-sl500-tp10000" in grid and "fixed_stop-sl500" in grid
    kinds = {p.kind for p in grid.values()}
    assert kinds == {"fixed_stop", "trailing_stop", "time_stop", "ladder"}
    assert sum(p.kind == "fixed_stop" for p in grid.values()) == 25
    assert len({p.canonical_json() for p in grid.values()}) == len(grid)
    for pid, pol in grid.items():
        assert pid.startswith(pol.kind) and " " not in pid
        assert parse_policy(pol.canonical_json()) == pol
    candles, alerts = market(7, n_mints=3, n_bars=60)
    fr = search_frontier(alerts, candles, min_trades=1)
    assert set(fr["policy_id"]) == set(grid)
