from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from quantbot_assets.catalog.leaderboards import (
    POLICY_COLUMNS,
    caller_leaderboard,
    policy_leaderboard,
)
from quantbot_assets.engine.bootstrap import bootstrap_seed
from quantbot_assets.rundir import atomic_write_parquet
from quantbot_assets.schemas import ARTIFACT_SCHEMAS
from quantbot_assets_tests.catalog.runbuilder import paths_table, trades_table


@pytest.fixture
def exports(tmp_path):
    calls = {
        # (hit_2x, hit_3x, hit_4x, peak_multiple, dd_bps)
        "alice": [
            (True, True, False, 3.5, -100.0),
            (True, False, False, 2.5, -300.0),
            (False, False, False, 1.5, -500.0),
            (True, True, True, 4.5, -200.0),
        ],
        "bob": [(False, False, False, 1.2, -900.0)] * 3,
        "carol": [(True, False, False, 2.0, -50.0)],
    }
    atomic_write_parquet(paths_table("r", "2024-01-03", calls), tmp_path / "paths.parquet")
    trades = pd.concat(
        [
            trades_table(
                "r", "tight", [(100.0, False, 0.5), (-500.0, True, None), (300.0, False, 0.25)]
            ).to_pandas(),
            trades_table("loose", "loose", [(-50.0, False, 0.1), (-20.0, True, 0.2)]).to_pandas(),
        ]
    )
    atomic_write_parquet(
        pa.Table.from_pandas(trades, ARTIFACT_SCHEMAS["trades"], preserve_index=False),
        tmp_path / "trades.parquet",
    )
    return tmp_path


def test_caller_leaderboard_values_and_minimum(exports):
    board = caller_leaderboard(exports, min_calls=3)
    assert board["caller_name"].tolist() == ["alice", "bob"]  # carol has 1 call
    alice = board.iloc[0]
    assert alice["calls"] == 4
    assert alice["hit_2x_rate"] == 0.75
    assert alice["hit_3x_rate"] == 0.5
    assert alice["hit_4x_rate"] == 0.25
    assert alice["median_peak_multiple"] == 3.0  # median of 1.5, 2.5, 3.5, 4.5
    assert alice["median_dd_bps"] == -250.0
    # the builder puts every 2x 600 s after the alert
    assert alice["median_time_to_2x_min"] == 10.0
    assert math.isnan(board.iloc[1]["median_time_to_2x_min"])  # bob never reached 2x


def test_policy_leaderboard_values_and_minimum(exports):
    board = policy_leaderboard(exports, min_trades=2)
    # Ranked by the interval's lower bound: tight's higher median (100 against -35) rests on
    # 3 trades, one of them -500, so its interval reaches down to -500; loose's stays >= -50.
    assert board["policy_id"].tolist() == ["loose", "tight"]
    assert board["median_return_lo_bps"].tolist() == [-50.0, -500.0]
    tight = board.iloc[1]
    assert tight["trades"] == 3
    assert tight["avg_return_bps"] == pytest.approx(-100 / 3)
    assert tight["median_return_bps"] == 100.0
    assert tight["win_rate"] == pytest.approx(2 / 3)
    assert tight["stop_out_rate"] == pytest.approx(1 / 3)
    assert tight["avg_tail_capture"] == pytest.approx(0.375)  # nulls are not zeros
    assert policy_leaderboard(exports, min_trades=3)["policy_id"].tolist() == ["tight"]


def test_missing_exports_give_empty_boards(tmp_path):
    assert caller_leaderboard(tmp_path).empty
    assert list(policy_leaderboard(tmp_path).columns) == POLICY_COLUMNS


def _slow_interval(values: list[float], wins: list[bool], seed: int) -> list[float]:
    """docs/semantics.md "Intervals", one resample at a time."""
    order = np.argsort(np.asarray(values), kind="stable")
    xs, ws = np.asarray(values)[order], np.asarray(wins)[order]
    rng = np.random.default_rng(seed)
    meds, rates = [], []
    for _ in range(1000):
        pick = rng.integers(0, len(xs), size=len(xs))
        meds.append(np.percentile(xs[pick], 50))
        rates.append(np.mean(ws[pick]))
    return [*np.percentile(meds, [5, 95]), *np.percentile(rates, [5, 95])]


def test_boards_rank_by_the_lower_bound_and_show_the_sample(tmp_path):
    # "lucky": 5 trades with a high median; "steady": 60 trades with a lower median and a
    # narrow interval. The point estimate prefers lucky, the lower bound steady.
    rng = np.random.default_rng(3)
    lucky = [4000.0, 3000.0, 2500.0, -900.0, -800.0]
    steady = list(np.round(rng.normal(900.0, 300.0, 60), 1))
    trades = pd.concat(
        [
            trades_table("r", "lucky", [(r, r < 0, None) for r in lucky]).to_pandas(),
            trades_table("r", "steady", [(r, r < 0, None) for r in steady]).to_pandas(),
        ]
    )
    atomic_write_parquet(
        pa.Table.from_pandas(trades, ARTIFACT_SCHEMAS["trades"], preserve_index=False),
        tmp_path / "trades.parquet",
    )
    board = policy_leaderboard(tmp_path, min_trades=5)
    assert board["policy_id"].tolist() == ["steady", "lucky"]
    medians = board.set_index("policy_id")["median_return_bps"]
    assert medians["lucky"] == 2500.0 > medians["steady"]
    assert board["trades"].tolist() == [60, 5]
    for row in board.itertuples():
        values = trades.loc[trades["policy_id"] == row.policy_id, "realized_return_bps"]
        seed = bootstrap_seed("policy_leaderboard", row.parameters, row.policy_id)
        want = _slow_interval(values.tolist(), (values > 0).tolist(), seed)
        got = [row.median_return_lo_bps, row.median_return_hi_bps, row.win_rate_lo, row.win_rate_hi]
        assert got == want
    # a re-run gives the same numbers
    pd.testing.assert_frame_equal(board, policy_leaderboard(tmp_path, min_trades=5))

    # callers: 2x hits are the wins, peak multiples the values
    few = [(True, False, False, 3.0, -10.0)] * 2 + [(False, False, False, 1.1, -10.0)]
    many = [(True, False, False, 2.5, -10.0)] * 25 + [(False, False, False, 1.2, -10.0)] * 15
    paths = paths_table("r", "2024-01-03", {"few": few, "many": many})
    atomic_write_parquet(paths, tmp_path / "paths.parquet")
    callers = caller_leaderboard(tmp_path, min_calls=3)
    # few: 2 of 3 hit 2x (0.67), many: 25 of 40 (0.625), but few's interval starts lower
    assert callers["caller_name"].tolist() == ["many", "few"]
    assert callers["hit_2x_rate"].tolist() == [0.625, pytest.approx(2 / 3)]
    assert callers["calls"].tolist() == [40, 3]
    frame = paths.to_pandas()
    for row in callers.itertuples():
        part = frame[frame["caller_name"] == row.caller_name]
        seed = bootstrap_seed("caller_leaderboard", row.parameters, row.caller_name)
        want = _slow_interval(part["peak_multiple"].tolist(), part["hit_2x"].tolist(), seed)
        got = [
            row.median_peak_multiple_lo,
            row.median_peak_multiple_hi,
            row.hit_2x_rate_lo,
            row.hit_2x_rate_hi,
        ]
        assert got == want
