"""The monthly frontier asset over the month's calls (truth reused or computed in the run)."""

from __future__ import annotations

import json

import dagster as dg
import pandas as pd

from quantbot_assets.launch import execute_partitions, params_run_config
from quantbot_assets.rundir import read_manifest
from quantbot_assets_tests.platform.conftest import TEST_PARAMS
from quantbot_assets_tests.test_pictures import png_of

GRID = {
    "sl10": {"kind": "fixed_stop", "stop_loss_bps": 1000},
    "sl10-tp20": {"kind": "fixed_stop", "stop_loss_bps": 1000, "take_profit_bps": 2000},
    "time-1h": {"kind": "time_stop", "max_hold_ms": 3_600_000},
}


def test_frontier_month_run(defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
    execute_partitions(
        defs,
        "path_only_backtest",
        ["2024-01-01", "2024-01-02"],
        instance=instance,
        run_config=params_run_config(TEST_PARAMS),
        label="t",
    )
    config = params_run_config(
        TEST_PARAMS,
        {"ops": {"frontier": {"config": {"grid_json": json.dumps(GRID), "min_trades": 2}}}},
    )
    [outcome] = execute_partitions(
        defs, "frontier_search", ["2024-01"], instance=instance, run_config=config, label="f"
    )
    assert outcome.success, outcome.error
    manifest = read_manifest(outcome.run_dir)
    assert manifest.run_type == "optimization" and manifest.status == "completed"
    assert (manifest.dataset.from_, manifest.dataset.to) == ("2024-01-01", "2024-01-31")
    # Days 1 and 2 reused the path-only runs' truth; the rest (no calls) were computed here.
    assert manifest.partition_keys["paths"][0] == "2024-01-03"
    rows = pd.read_parquet(outcome.run_dir / "results/frontier.parquet")
    assert set(rows["caller_name"]) == {"__all__", "alice", "bob"}
    assert set(rows["policy_id"]) == set(GRID)
    overall = rows[rows["caller_name"] == "__all__"]
    assert overall["trades_count"].eq(10).all()  # 12 calls, 2 without candles
    assert (overall.loc[overall["meets_constraints"], "rank"].min()) == 1
    record = instance.fetch_materializations(dg.AssetKey("frontier"), limit=1).records[0]
    png_of(record.asset_materialization.metadata["score_vs_stop_outs"].value)
    assert (
        json.loads(overall.set_index("policy_id").loc["sl10", "policy_params"])["stop_loss_bps"]
        == 1000
    )


def test_frontier_without_any_alerts_fails_clearly(
    defs: dg.Definitions, instance: dg.DagsterInstance
) -> None:
    [outcome] = execute_partitions(
        defs,
        "frontier_search",
        ["2024-02"],
        instance=instance,
        run_config=params_run_config(TEST_PARAMS),
        label="f",
    )
    assert not outcome.success and "no calls in this month" in (outcome.error or "")
    assert (outcome.run_dir / "_FAILED").exists()
