from __future__ import annotations

import math

import pandas as pd
import pyarrow as pa
import pytest

from quantbot_assets.catalog.leaderboards import (
    POLICY_COLUMNS,
    caller_leaderboard,
    policy_leaderboard,
)
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
    assert board["policy_id"].tolist() == ["tight", "loose"]
    tight = board.iloc[0]
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
