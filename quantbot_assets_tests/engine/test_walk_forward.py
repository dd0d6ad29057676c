"""Walk-forward: folds, the choice on train days, its score on test days, pooling and the
verdict, on a hand-made two-fold case whose numbers follow from docs/semantics.md."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from quantbot_assets import schemas
from quantbot_assets.engine.walk_forward import Fold, make_folds, walk_forward

D0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
DAY = 86_400_000
HOUR = 3_600_000
M = 60_000

# A: exits at +10 % or -10 %; B: a 50 % stop only, else the window's last close.
GRID = {
    "A": {"kind": "fixed_stop", "stop_loss_bps": 1000, "take_profit_bps": 1000},
    "B": {"kind": "fixed_stop", "stop_loss_bps": 5000},
}
# Two 1m bars from the alert minute. A pump: A takes profit at 1.1 (+1000 bps), B ends at
# the close 1.4 (+4000). A dump: A stops at 0.9 (-1000), B ends at the close 0.8 (-2000).
# Flat: one bar closing at 1.02, both +200.
SHAPES = {
    "P": [(1.0, 1.05, 0.99, 1.05), (1.05, 1.5, 1.04, 1.4)],
    "D": [(1.0, 1.01, 0.95, 0.96), (0.96, 0.97, 0.7, 0.8)],
    "F": [(1.0, 1.02, 0.98, 1.02)],
}
# (caller, day, shape, minute of the day): alice swings, bob pumps, dave calls once.
CALLS = [
    ("alice", 0, "P", 60),
    ("alice", 0, "P", 61),
    ("alice", 1, "P", 60),
    ("alice", 1, "D", 61),
    ("alice", 2, "D", 60),
    ("alice", 2, "D", 61),
    ("alice", 3, "P", 60),
    ("alice", 3, "P", 61),
    ("bob", 0, "P", 62),
    ("bob", 0, "P", 63),
    ("bob", 1, "P", 62),
    ("bob", 1, "F", 63),
    # 23:30 on day 1 with a 1 h horizon: its window ends after day 2 begins, so fold 0
    # (testing day 2) must not train on it; fold 1 (testing day 3) does.
    ("bob", 1, "D", 23 * 60 + 30),
    ("bob", 2, "P", 62),
    ("bob", 2, "P", 63),
    ("bob", 3, "P", 62),
    ("bob", 3, "P", 63),
    ("dave", 3, "P", 64),
]


def case() -> tuple[pd.DataFrame, pd.DataFrame]:
    alerts, bars = [], []
    for i, (caller, day, shape, minute) in enumerate(CALLS):
        ts = D0 + day * DAY + minute * M
        mint = f"m{i}"
        alerts.append(
            {
                "call_id": f"c{i}",
                "mint": mint,
                "caller_name": caller,
                "chain": "sol",
                "alert_ts_ms": ts,
                "created_at": "",
            }
        )
        for k, (o, h, lo, c) in enumerate(SHAPES[shape]):
            bars.append(
                {
                    "chain": "sol",
                    "mint": mint,
                    "interval": "1m",
                    "ts_ms": ts + k * M,
                    "open": o,
                    "high": h,
                    "low": lo,
                    "close": c,
                    "volume": 1.0,
                }
            )
    return pd.DataFrame(bars), pd.DataFrame(alerts)


def run(**kw: object) -> pd.DataFrame:
    candles, alerts = case()
    args: dict = {
        "first_day": "2024-01-01",
        "last_day": "2024-01-04",
        "train_days": 2,
        "test_days": 1,
        "step_days": 1,
        "baseline_policy_id": "B",
        "objective": "median_return_bps",
        "min_trades": 2,
        "max_stop_out_rate": 0.8,
        "horizon_ms": HOUR,
        **kw,
    }
    return walk_forward(alerts, candles, GRID, **args)


def test_folds_roll_over_the_range() -> None:
    folds = make_folds("2024-01-01", "2024-01-31")  # 14 / 7 / 7
    assert [(f.train_from.day, f.train_to.day, f.test_from.day, f.test_to.day) for f in folds] == [
        (1, 14, 15, 21),
        (8, 21, 22, 28),
    ]  # a third fold would test Jan 29 .. Feb 4: not whole, left out
    assert make_folds("2024-01-01", "2024-01-04", train_days=2, test_days=1, step_days=1) == [
        Fold(0, date(2024, 1, 1), date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 3)),
        Fold(1, date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 4), date(2024, 1, 4)),
    ]
    assert make_folds("2024-01-01", "2024-01-20") == []
    with pytest.raises(ValueError, match="step_days"):
        make_folds("2024-01-01", "2024-01-31", step_days=0)


def test_two_folds_by_hand() -> None:
    rows = run()
    assert list(rows.columns) == schemas.WALK_FORWARD.names
    fold = rows[rows["kind"] == "fold"].set_index(["fold", "caller_name"])
    got = fold[["policy_id", "is_trades", "is_score", "oos_trades", "oos_score"]]
    base = fold["baseline_oos_score"]
    # Fold 0 trains on days 0-1 (bob's 23:30 call left out), tests day 2.
    # alice: A [1000, 1000, 1000, -1000] median 1000, B [4000 x3, -2000] median 4000: B.
    #        Day 2 (D, D) under B: -2000. Baseline B: -2000.
    assert got.loc[(0, "alice")].tolist() == ["B", 4, pytest.approx(4000), 2, pytest.approx(-2000)]
    assert base.loc[(0, "alice")] == pytest.approx(-2000)
    # bob: A [1000 x3, 200] median 1000, B [4000 x3, 200] median 4000: B; day 2 (P, P): 4000.
    assert got.loc[(0, "bob")].tolist() == ["B", 4, pytest.approx(4000), 2, pytest.approx(4000)]
    # __all__: A median of [1000 x6, -1000, 200] = 1000, B of [4000 x6, -2000, 200] = 4000: B;
    #          day 2: B [-2000, -2000, 4000, 4000] median 1000.
    assert got.loc[(0, "__all__")].tolist() == [
        "B",
        8,
        pytest.approx(4000),
        4,
        pytest.approx(1000),
    ]
    # dave has no call before day 3: no choice, nothing traded.
    assert pd.isna(got.loc[(0, "dave"), "policy_id"]) and got.loc[(0, "dave"), "is_trades"] == 0
    # Fold 1 trains on days 1-2 (bob's 23:30 call included), tests day 3.
    # alice: A [1000, -1000, -1000, -1000] median -1000 (stop-out rate 0.75 <= 0.8),
    #        B [4000, -2000 x3] median -2000: A. Day 3 (P, P) under A: 1000; baseline B 4000.
    assert got.loc[(1, "alice")].tolist() == [
        "A",
        4,
        pytest.approx(-1000),
        2,
        pytest.approx(1000),
    ]
    assert base.loc[(1, "alice")] == pytest.approx(4000)
    assert fold.loc[(1, "alice"), "gap"] == pytest.approx(2000)
    # bob: A [1000, 200, -1000, 1000, 1000] median 1000, B [4000, 200, -2000, 4000, 4000]
    #      median 4000: B; day 3: 4000.
    assert got.loc[(1, "bob")].tolist() == ["B", 5, pytest.approx(4000), 2, pytest.approx(4000)]
    # __all__: A and B both have median 200 over the 9 train calls; the tie goes to the lower
    # stop-out rate: B (0 of 9) over A (4 of 9). Day 3 (5 pumps) under B: 4000.
    assert got.loc[(1, "__all__")].tolist() == [
        "B",
        9,
        pytest.approx(200),
        5,
        pytest.approx(4000),
    ]
    # dave: no train call, one test call; the baseline still scores it.
    assert pd.isna(got.loc[(1, "dave"), "policy_id"])
    assert got.loc[(1, "dave"), "oos_trades"] == 1
    assert base.loc[(1, "dave")] == pytest.approx(4000)
    assert fold["holds_up"].isna().all() and fold["verdict"].isna().all()


def test_pooled_rows_by_hand() -> None:
    rows = run()
    pooled = rows[rows["kind"] == "pooled"].set_index("caller_name")
    cols = ["folds", "is_trades", "is_score", "oos_trades", "oos_score", "baseline_oos_score"]
    # alice: in-sample B's 4 + A's 4 train trades: [-2000, -1000 x3, 1000, 4000 x3] median 0;
    # out of sample [-2000, -2000] + [1000, 1000] median -500; baseline [-2000 x2, 4000 x2]
    # median 1000. Not above 0: does not hold up.
    assert pooled.loc["alice", cols].tolist() == [
        2,
        8,
        pytest.approx(0),
        4,
        pytest.approx(-500),
        pytest.approx(1000),
    ]
    assert pooled.loc["alice", "gap"] == pytest.approx(-500)
    assert (pooled.loc["alice", "holds_up"], pooled.loc["alice", "verdict"]) == (
        False,
        "not_above_min",
    )
    # bob: in-sample [4000 x3, 200] + [4000, 200, -2000, 4000, 4000] median 4000; out of
    # sample 4 x 4000; baseline the same: holds up.
    assert pooled.loc["bob", cols].tolist() == [
        2,
        9,
        pytest.approx(4000),
        4,
        pytest.approx(4000),
        pytest.approx(4000),
    ]
    assert (pooled.loc["bob", "holds_up"], pooled.loc["bob", "verdict"]) == (True, "holds_up")
    # __all__: in-sample [4000 x6, -2000, 200] + [-2000 x4, 200, 4000 x4]: 17 trades, the 9th
    # lowest 4000; out of sample [-2000 x2, 4000 x2] + [4000 x5]: median 4000.
    assert pooled.loc["__all__", cols].tolist() == [
        2,
        17,
        pytest.approx(4000),
        9,
        pytest.approx(4000),
        pytest.approx(4000),
    ]
    assert pooled.loc["__all__", "verdict"] == "holds_up"
    # dave never had a choice.
    assert pooled.loc["dave", "folds"] == 0 and pooled.loc["dave", "verdict"] == "no_choice"
    assert not pooled.loc["dave", "holds_up"]
    assert (pooled["test_from"] == "2024-01-03").all() and (pooled["test_to"] == "2024-01-04").all()


def test_verdicts_follow_the_thresholds() -> None:
    # min_oos_score below alice's -500 and her own baseline (1000) above: below_baseline.
    rows = run(min_oos_score=-1000.0).set_index(["kind", "caller_name"])
    assert rows.loc[("pooled", "alice"), "verdict"] == "below_baseline"
    # Fewer pooled test trades than min_trades: too_few_trades (bob has 4, 5 are needed; with
    # min_trades 5 no fold of alice or bob meets the constraints on 4 train trades).
    rows = run(min_trades=5).set_index(["kind", "caller_name"])
    assert rows.loc[("pooled", "alice"), "verdict"] == "no_choice"
    assert rows.loc[("fold", "bob"), "policy_id"].fillna("-").tolist() == ["-", "B"]
    assert rows.loc[("pooled", "bob"), "verdict"] == "too_few_trades"


def test_bad_settings_are_refused_before_work() -> None:
    with pytest.raises(ValueError, match="baseline_policy_id"):
        run(baseline_policy_id="C")
    with pytest.raises(ValueError, match="no fold"):
        run(last_day="2024-01-02")
    with pytest.raises(ValueError, match="objective"):
        run(objective="sharpe")


def test_pooled_rows_carry_the_bootstrap_interval_of_their_test_trades() -> None:
    """How sure: the pooled out-of-sample trades' 90 % interval (docs/semantics.md
    "Intervals"), seeded from the run parameters and the caller; null on fold rows and
    where there are fewer than 2 test trades."""
    import json

    from quantbot_assets.engine.bootstrap import bootstrap_seed
    from quantbot_assets_tests.engine.test_bootstrap import slow_intervals

    rows = run()
    pooled = rows[rows["kind"] == "pooled"].set_index("caller_name")
    cols = ["oos_median_return_lo_bps", "oos_median_return_hi_bps", "oos_win_rate_lo"]
    cols.append("oos_win_rate_hi")
    key = json.dumps(["1m", HOUR, 0, 0.0, 0.0])
    # the pooled test returns, as test_pooled_rows_by_hand derives them
    tests = {
        "alice": [-2000, -2000, 1000, 1000],
        "bob": [4000] * 4,
        "__all__": [-2000, -2000, 4000, 4000, *[4000] * 5],
    }
    for caller, returns in tests.items():
        want = slow_intervals(returns, bootstrap_seed("walk_forward", key, caller))
        # the engine's returns are these up to float rounding of the price ratios
        assert pooled.loc[caller, cols].tolist() == pytest.approx(want, rel=1e-9), caller
    assert pooled.loc["bob", cols].tolist() == pytest.approx([4000, 4000, 1.0, 1.0])
    assert pooled.loc["alice", "oos_median_return_lo_bps"] < pooled.loc["alice", "oos_score"]
    assert pooled.loc["dave", cols].isna().all()
    assert rows.loc[rows["kind"] == "fold", cols].isna().all().all()
