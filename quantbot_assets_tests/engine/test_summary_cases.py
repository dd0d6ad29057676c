"""Hand-computed summary (summarize) and frontier (search_frontier) cases, from
docs/semantics.md "Summary" and "Frontier"."""

from __future__ import annotations

import json
import math
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import pytest

from quantbot_assets import schemas
from quantbot_assets_tests.engine.conftest import BASE, CHAIN, M, candles
from quantbot_assets_tests.engine.reference import reference_summary


def trades_frame(
    returns: list[float],
    *,
    stop_out: list[bool] | None = None,
    mae: list[float] | None = None,
    exposed: list[int] | None = None,
    tail: list[float | None] | None = None,
    ambiguous: list[bool] | None = None,
    optimistic: list[float] | None = None,
    complete: list[bool] | None = None,
) -> pd.DataFrame:
    n = len(returns)
    return pd.DataFrame(
        {
            "run_id": "r",
            "policy_id": "p",
            "call_id": [f"c{i}" for i in range(n)],
            "caller_name": "alice",
            "mint": "m",
            "chain": CHAIN,
            "entry_ts_ms": pd.Series([BASE] * n, dtype="int64"),
            "entry_px": 1.0,
            "exit_ts_ms": pd.Series([BASE] * n, dtype="int64"),
            "exit_px": 1.0,
            "exit_reason": "end_of_window",
            "realized_return_bps": pd.Series(returns, dtype="float64"),
            "stop_out": pd.Series(stop_out or [False] * n, dtype="bool"),
            "max_adverse_excursion_bps": pd.Series(mae or [0.0] * n, dtype="float64"),
            "time_exposed_ms": pd.Series(exposed or [0] * n, dtype="int64"),
            "tail_capture": pd.Series(
                [np.nan if t is None else t for t in (tail or [None] * n)], dtype="float64"
            ),
            "ambiguous": pd.Series(ambiguous or [False] * n, dtype="bool"),
            "ambiguity_resolved": pd.Series([False] * n, dtype="bool"),
            "optimistic_return_bps": pd.Series(
                returns if optimistic is None else optimistic, dtype="float64"
            ),
            "window_complete": pd.Series(complete or [True] * n, dtype="bool"),
        },
        columns=schemas.TRADES.names,
    )


def summarize(trades: pd.DataFrame, processed: int, excluded: int) -> dict[str, Any]:
    from quantbot_assets.engine import summarize as engine_summarize

    out = engine_summarize(trades, processed, excluded)
    assert list(out.columns) == schemas.SUMMARY_METRICS.names
    assert len(out) == 1
    return {k: (None if pd.isna(v) else v) for k, v in out.iloc[0].to_dict().items()}


def check(row: dict[str, Any], expected: dict[str, Any]) -> None:
    for key, want in expected.items():
        if want is None or isinstance(want, bool | int):
            assert row[key] == want, key
        else:
            assert row[key] == pytest.approx(want, rel=1e-12), key


def test_summary_hand_computed() -> None:
    # Returns sorted: [-200, -50, 0, 100, 300]. Linear percentiles (numpy default):
    # position q * (n - 1): p25 -> 1 -> -50; p50 -> 2 -> 0; p75 -> 3 -> 100;
    # p90 -> 3.6 -> 100 + 0.6 * (300 - 100) = 220. avg = 150 / 5 = 30.
    # win_rate: strictly > 0 -> 2 of 5 (the 0 is not a win). profit_factor = 400 / 250.
    trades = trades_frame(
        [100.0, -50.0, 0.0, 300.0, -200.0],
        stop_out=[False, True, False, False, True],
        mae=[-10.0, -60.0, 0.0, -5.0, -200.0],
        exposed=[60_000, 120_000, 0, 300_000, 60_000],
        tail=[0.5, None, 0.0, 0.9, None],
    )
    row = summarize(trades, 7, 2)
    check(
        row,
        {
            "calls_processed": 7,
            "calls_excluded": 2,
            "trades_count": 5,
            "avg_return_bps": 30.0,
            "median_return_bps": 0.0,
            "p25_return_bps": -50.0,
            "p75_return_bps": 100.0,
            "p90_return_bps": 220.0,
            "win_rate": 0.4,
            "profit_factor": 1.6,
            "stop_out_rate": 0.4,
            "avg_max_adverse_excursion_bps": -55.0,  # -275 / 5
            "avg_time_exposed_ms": 108_000.0,  # 540_000 / 5
            "median_time_exposed_ms": 60_000.0,  # sorted 0, 60k, 60k, 120k, 300k
            # null tail captures (peak_multiple <= 1) are left out: [0.5, 0.0, 0.9]
            "avg_tail_capture": 1.4 / 3,
            "median_tail_capture": 0.5,
        },
    )


def test_summary_even_count_and_no_losses() -> None:
    # [0, 10, 20, 30]: median (10 + 20) / 2 = 15; p90 at 2.7 -> 20 + 0.7 * 10 = 27.
    # No losses: profit_factor null (not inf). win_rate 3 / 4.
    row = summarize(trades_frame([30.0, 0.0, 10.0, 20.0]), 4, 0)
    check(
        row,
        {
            "median_return_bps": 15.0,
            "p90_return_bps": 27.0,
            "p25_return_bps": 7.5,  # 0.75 -> 0 + 0.75 * 10
            "profit_factor": None,
            "win_rate": 0.75,
            "avg_tail_capture": None,  # every tail capture null
            "median_tail_capture": None,
        },
    )


def test_summary_only_losses_has_zero_profit_factor() -> None:
    row = summarize(trades_frame([-10.0, -30.0]), 2, 0)
    check(row, {"profit_factor": 0.0, "win_rate": 0.0, "avg_return_bps": -20.0})


def test_summary_without_trades() -> None:
    # Every call excluded: counts hold, metrics are null (nothing to average).
    row = summarize(trades_frame([]), 3, 3)
    assert row["trades_count"] == 0
    assert (row["calls_processed"], row["calls_excluded"]) == (3, 3)
    for key in ("avg_return_bps", "median_return_bps", "win_rate", "stop_out_rate"):
        assert row[key] is None, key


def test_summary_matches_reference_on_random_returns() -> None:
    rng = np.random.default_rng(7)
    n = 57
    trades = trades_frame(
        list(rng.normal(50, 800, n)),
        stop_out=list(rng.random(n) < 0.3),
        mae=list(-rng.exponential(300, n)),
        exposed=[int(x) for x in rng.integers(0, 10_000_000, n)],
        tail=[None if x < 0.2 else float(x) for x in rng.random(n)],
        ambiguous=list(rng.random(n) < 0.2),
        complete=list(rng.random(n) < 0.9),
    )
    amb = trades["ambiguous"].to_numpy()
    opt = trades["realized_return_bps"].to_numpy() + np.where(amb, rng.exponential(900, n), 0.0)
    trades["optimistic_return_bps"] = opt
    row = summarize(trades, n + 4, 4)
    want = reference_summary(trades, n + 4, 4)
    for key, value in want.items():
        if value is None:
            assert row[key] is None, key
        else:
            assert row[key] == pytest.approx(value, rel=1e-9), key


def test_summary_ambiguity_and_window_metrics() -> None:
    # Returns -1000, 200, -500, 0; the first and third were ambiguous bars whose optimistic
    # reading gives 5000 and 1000. ambiguous_trade_rate = 2/4; optimistic returns
    # 5000, 200, 1000, 0: mean 6200 / 4 = 1550, median (200 + 1000) / 2 = 600. One trade's
    # window was cut short by the data.
    trades = trades_frame(
        [-1000.0, 200.0, -500.0, 0.0],
        ambiguous=[True, False, True, False],
        optimistic=[5000.0, 200.0, 1000.0, 0.0],
        complete=[True, True, False, True],
    )
    row = summarize(trades, 4, 0)
    assert row["ambiguous_trade_rate"] == 0.5
    assert row["avg_optimistic_return_bps"] == 1550.0
    assert row["median_optimistic_return_bps"] == 600.0
    assert row["window_incomplete_trades"] == 1
    assert row["median_return_bps"] == -250.0  # the pessimistic side is unchanged


def test_summary_of_trades_without_the_new_columns() -> None:
    # Trades read from files written before the ambiguity columns: the new metrics are null,
    # the others as before.
    trades = trades_frame([10.0, -20.0]).drop(
        columns=["ambiguous", "ambiguity_resolved", "optimistic_return_bps", "window_complete"]
    )
    row = summarize(trades, 2, 0)
    assert row["avg_return_bps"] == -5.0
    for key in (
        "ambiguous_trade_rate",
        "avg_optimistic_return_bps",
        "median_optimistic_return_bps",
        "window_incomplete_trades",
    ):
        assert row[key] is None, key


def test_summary_rejects_counts_that_break_the_invariant() -> None:
    # calls_processed = calls_excluded + trades_count is an invariant; a summary that
    # broke it silently would hide dropped calls (reading: summarize raises ValueError).
    from quantbot_assets.engine import summarize as engine_summarize

    with pytest.raises(ValueError):
        engine_summarize(trades_frame([1.0, 2.0]), 5, 1)


def test_invariant_end_to_end() -> None:
    from quantbot_assets.engine import compute_paths, parse_policy, simulate_policy
    from quantbot_assets.engine import summarize as engine_summarize

    bars = [(0, 1.0, 1.2, 0.9, 1.1), (1, 1.1, 1.3, 1.0, 1.2), (2, 1.2, 1.25, 0.8, 0.9)]
    frame = pd.concat(
        [candles(bars, mint="A"), candles([(0, 0.0, 1.0, 0.5, 1.0)], mint="B")], ignore_index=True
    )
    calls = pd.DataFrame(
        {
            "call_id": ["a1", "a2", "b1", "z1"],
            "mint": ["A", "A", "B", "Z"],
            "caller_name": "alice",
            "chain": CHAIN,
            "alert_ts_ms": [BASE, BASE + M, BASE, BASE],
            "created_at": "",
        }
    )
    paths, excluded = compute_paths(calls, frame)
    trades = simulate_policy(
        calls, frame, parse_policy({"kind": "fixed_stop", "stop_loss_bps": 1500}), policy_id="p"
    )
    row = engine_summarize(trades, len(calls), len(excluded)).iloc[0]
    assert (row["calls_processed"], row["calls_excluded"], row["trades_count"]) == (4, 2, 2)
    assert len(paths) == 2


# ---------------------------------------------------------------- frontier

# Path A: bar 0 low 0.85, bar 1 high 2.0, bar 2 opens 1.7. Path B: a crash in bar 1.
PATH_A = [(0, 1.0, 1.1, 0.85, 1.0), (1, 1.0, 2.0, 0.95, 1.8), (2, 1.7, 1.75, 1.6, 1.65)]
PATH_B = [(0, 1.0, 1.05, 0.95, 1.0), (1, 1.0, 1.02, 0.5, 0.6), (2, 0.6, 0.65, 0.55, 0.6)]
# Per path (return bps, stop_out):
#   tight  fixed 1000:        A: S 0.9 hit on bar 0 -> -1000, stop | B: bar 1 -> -1000, stop
#   loose  fixed 2000:        A: no stop, close 1.65 -> +6500      | B: 0.8 -> -2000, stop
#   tp     fixed 2000/5000:   A: 1.5 on bar 1 -> +5000             | B: 0.8 -> -2000, stop
#   trail  act 5000 trail 1000: A: armed after bar 1 (peak 2.0), T = 1.8, bar 2 opens 1.7
#                               <= T -> gap fill 1.7 -> +7000, stop | B: never armed, close
#                               0.6 -> -4000, no stop
GRID = {
    "tight": {"kind": "fixed_stop", "stop_loss_bps": 1000},
    "loose": {"kind": "fixed_stop", "stop_loss_bps": 2000},
    "tp": {"kind": "fixed_stop", "stop_loss_bps": 2000, "take_profit_bps": 5000},
    "trail": {"kind": "trailing_stop", "activation_bps": 5000, "trail_bps": 1000},
}
# alice: A, A, B (3 trades); bob: A, B (2 trades). min_trades = 3.
CALLS = [("a1", "alice", PATH_A), ("a2", "alice", PATH_A), ("a3", "alice", PATH_B)]
CALLS += [("b1", "bob", PATH_A), ("b2", "bob", PATH_B)]


def frontier_inputs() -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = pd.concat([candles(path, mint=cid) for cid, _, path in CALLS], ignore_index=True)
    calls = pd.DataFrame(
        {
            "call_id": [c[0] for c in CALLS],
            "mint": [c[0] for c in CALLS],
            "caller_name": [c[1] for c in CALLS],
            "chain": CHAIN,
            "alert_ts_ms": BASE,
            "created_at": "",
        }
    )
    return calls, frame


def run_frontier(**kw: Any) -> pd.DataFrame:
    from quantbot_assets.engine import parse_policy, search_frontier

    calls, frame = frontier_inputs()
    grid = {pid: parse_policy(p) for pid, p in GRID.items()}
    out = search_frontier(calls, frame, grid, min_trades=3, **kw)
    assert list(out.columns) == schemas.FRONTIER.names
    return out


@cache
def default_frontier() -> pd.DataFrame:
    return run_frontier(run_id="f1").set_index(["caller_name", "policy_id"])


# Expected (caller, policy): trades, median, stop_out_rate, meets, pareto, rank.
#   alice tight: [-1000]*3, median -1000, stop 1.0 > 0.8 -> fails
#   alice loose: [6500, 6500, -2000] median 6500, stop 1/3 -> meets, pareto (lowest stop
#                rate among the best), rank 2
#   alice tp:    [5000, 5000, -2000] median 5000, stop 1/3 -> meets, dominated by loose
#                (higher score, same stop rate), rank 3
#   alice trail: [7000, 7000, -4000] median 7000, stop 2/3 <= 0.8 -> meets, pareto, rank 1
#   bob: 2 trades < 3 -> nothing meets; pareto false, rank null
#   __all__ (3 A + 2 B): tight stop 1.0 fails; loose [6500 x3, -2000 x2] median 6500,
#   stop 0.4; tp median 5000, stop 0.4 (dominated); trail median 7000, stop 3/5.
EXPECTED = [
    ("alice", "tight", 3, -1000.0, 1.0, False, False, None),
    ("alice", "loose", 3, 6500.0, 1 / 3, True, True, 2),
    ("alice", "tp", 3, 5000.0, 1 / 3, True, False, 3),
    ("alice", "trail", 3, 7000.0, 2 / 3, True, True, 1),
    ("bob", "tight", 2, -1000.0, 1.0, False, False, None),
    ("bob", "loose", 2, 2250.0, 0.5, False, False, None),
    ("bob", "tp", 2, 1500.0, 0.5, False, False, None),
    ("bob", "trail", 2, 1500.0, 0.5, False, False, None),
    ("__all__", "tight", 5, -1000.0, 1.0, False, False, None),
    ("__all__", "loose", 5, 6500.0, 0.4, True, True, 2),
    ("__all__", "tp", 5, 5000.0, 0.4, True, False, 3),
    ("__all__", "trail", 5, 7000.0, 0.6, True, True, 1),
]


@pytest.mark.parametrize(
    ("caller", "policy_id", "n", "median", "stop_rate", "meets", "pareto", "rank"), EXPECTED
)
def test_frontier_hand_computed(
    caller: str,
    policy_id: str,
    n: int,
    median: float,
    stop_rate: float,
    meets: bool,
    pareto: bool,
    rank: int | None,
) -> None:
    out = default_frontier()
    assert len(out) == len(EXPECTED)
    row = out.loc[(caller, policy_id)]
    assert row["run_id"] == "f1"
    assert int(row["trades_count"]) == n
    assert row["median_return_bps"] == pytest.approx(median)
    assert row["objective_score"] == pytest.approx(median)  # default objective
    assert row["stop_out_rate"] == pytest.approx(stop_rate)
    assert bool(row["meets_constraints"]) is meets
    assert bool(row["pareto"]) is pareto
    assert (None if pd.isna(row["rank"]) else int(row["rank"])) == rank
    # policy_params is JSON that parses back to the same policy
    from quantbot_assets.engine import parse_policy

    assert json.loads(row["policy_params"])["kind"] == GRID[policy_id]["kind"]
    assert parse_policy(row["policy_params"]) == parse_policy(GRID[policy_id])


def test_frontier_constraints_are_configurable() -> None:
    # min_trades 3 with max_stop_out_rate 1.0: tight now meets too. Overall scores:
    # trail 7000 (stop 0.6), loose 6500 (0.4), tp 5000 (0.4), tight -1000 (1.0).
    # Pareto: trail (best score), loose (best at stop rate 0.4); tp and tight dominated.
    out = run_frontier(max_stop_out_rate=1.0).set_index(["caller_name", "policy_id"])
    overall = out.loc["__all__"]
    assert overall["meets_constraints"].astype(bool).to_dict() == {
        "tight": True,
        "loose": True,
        "tp": True,
        "trail": True,
    }
    assert overall["pareto"].astype(bool).to_dict() == {
        "tight": False,
        "loose": True,
        "tp": False,
        "trail": True,
    }
    assert {k: int(v) for k, v in overall["rank"].to_dict().items()} == {
        "trail": 1,
        "loose": 2,
        "tp": 3,
        "tight": 4,
    }


def test_frontier_other_objective() -> None:
    # objective avg_return_bps, overall: loose (3 * 6500 - 4000) / 5 = 3100;
    # trail (21000 - 8000) / 5 = 2600; tp (15000 - 4000) / 5 = 2200. Ranks follow.
    out = run_frontier(objective="avg_return_bps").set_index(["caller_name", "policy_id"])
    overall = out.loc["__all__"]
    assert overall.loc["loose", "objective_score"] == pytest.approx(3100.0)
    ranks = {k: (None if pd.isna(v) else int(v)) for k, v in overall["rank"].to_dict().items()}
    assert ranks == {"loose": 1, "trail": 2, "tp": 3, "tight": None}
    # loose is now best on both counts: it dominates trail and tp.
    assert overall["pareto"].astype(bool).to_dict() == {
        "tight": False,
        "loose": True,
        "tp": False,
        "trail": False,
    }


def test_frontier_rules_hold_on_its_own_rows() -> None:
    out = run_frontier()
    for _, group in out.groupby("caller_name"):
        ok = group[group["meets_constraints"].astype(bool)]
        for _, row in group.iterrows():
            want_meets = row["trades_count"] >= 3 and row["stop_out_rate"] <= 0.8
            assert bool(row["meets_constraints"]) is bool(want_meets)
            dominated = any(
                o["objective_score"] >= row["objective_score"]
                and o["stop_out_rate"] <= row["stop_out_rate"]
                and (
                    o["objective_score"] > row["objective_score"]
                    or o["stop_out_rate"] < row["stop_out_rate"]
                )
                for _, o in ok.iterrows()
            )
            assert bool(row["pareto"]) is (bool(row["meets_constraints"]) and not dominated)
    assert math.isclose(
        float(out.set_index(["caller_name", "policy_id"]).loc[("bob", "loose"), "avg_return_bps"]),
        2250.0,
    )


def test_default_grid_covers_every_caller() -> None:
    from quantbot_assets.engine import search_frontier

    calls, frame = frontier_inputs()
    out = search_frontier(calls, frame, min_trades=1)
    assert list(out.columns) == schemas.FRONTIER.names
    per_policy = out.groupby("policy_id")["caller_name"].apply(sorted)
    assert len(per_policy) > 1
    assert all(names == ["__all__", "alice", "bob"] for names in per_policy)
    overall = out[out["caller_name"] == "__all__"]
    assert (overall["trades_count"] == 5).all()
    ok = overall[overall["meets_constraints"].astype(bool)]
    # rank 1 is the best objective among the rows meeting the constraints
    assert ok.loc[ok["rank"] == 1, "objective_score"].iloc[0] == ok["objective_score"].max()


def test_frontier_rejects_an_invalid_policy_before_work() -> None:
    from quantbot_assets.engine import search_frontier

    calls, frame = frontier_inputs()
    bad = {**GRID, "bad": {"kind": "fixed_stop", "stop_loss_bps": 10000}}
    with pytest.raises(ValueError, match="stop_loss_bps"):
        search_frontier(calls, frame, bad, min_trades=1)
