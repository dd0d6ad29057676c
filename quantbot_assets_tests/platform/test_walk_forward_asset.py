"""The walk_forward asset over the tiny data: folds, pooled rows, manifest and metadata."""

from __future__ import annotations

import json

import dagster as dg
import pandas as pd

from quantbot_assets.catalog.register import register_runs
from quantbot_assets.catalog.writer import catalog_writer
from quantbot_assets.launch import execute_partitions, params_run_config
from quantbot_assets.rundir import read_manifest
from quantbot_assets.schemas import WALK_FORWARD_ARTIFACT
from quantbot_assets.settings import Settings
from quantbot_assets_tests.platform.conftest import TEST_PARAMS
from quantbot_assets_tests.platform.test_frontier_asset import GRID
from quantbot_assets_tests.test_pictures import png_of


def config(**kw: object) -> dict:
    return params_run_config(
        TEST_PARAMS,
        {
            "ops": {
                "walk_forward": {
                    "config": {
                        "grid_json": json.dumps(GRID),
                        "min_trades": 2,
                        "baseline_policy_id": "sl10",
                        "train_days": 1,
                        "test_days": 1,
                        "step_days": 1,
                        "first_day": "2024-01-01",
                        "last_day": "2024-01-03",
                        **kw,
                    }
                }
            }
        },
    )


def test_walk_forward_month_run(
    defs: dg.Definitions, instance: dg.DagsterInstance, settings: Settings
) -> None:
    [outcome] = execute_partitions(
        defs, "walk_forward_search", ["2024-01"], instance=instance, run_config=config(), label="w"
    )
    assert outcome.success, outcome.error
    manifest = read_manifest(outcome.run_dir)
    assert manifest.run_type == "optimization" and manifest.status == "completed"
    assert (outcome.run_dir / "_SUCCESS").exists()
    assert manifest.artifacts["walk_forward"].path == "results/walk_forward.parquet"
    assert manifest.parameters["baseline_policy_id"] == "sl10"
    assert (manifest.dataset.from_, manifest.dataset.to) == ("2024-01-01", "2024-01-03")
    rows = pd.read_parquet(outcome.run_dir / "results/walk_forward.parquet")
    assert rows.columns.tolist() == WALK_FORWARD_ARTIFACT.names
    folds = rows[rows["kind"] == "fold"]
    # Fold 0 trains on Jan 1 and tests Jan 2; fold 1 tests Jan 3 (no calls).
    assert sorted(set(folds["fold"])) == [0, 1]
    assert set(rows["caller_name"]) == {"__all__", "alice", "bob"}
    all0 = folds[(folds["fold"] == 0) & (folds["caller_name"] == "__all__")].iloc[0]
    assert (all0["is_trades"], all0["oos_trades"]) == (5, 5)  # 6 calls a day, 1 without candles
    assert all0["policy_id"] in GRID and all0["oos_score"] == all0["oos_score"]
    assert folds.loc[folds["fold"] == 1, "oos_trades"].eq(0).all()
    pooled = rows[rows["kind"] == "pooled"].set_index("caller_name")
    assert pooled.loc["__all__", "oos_trades"] == 5 and pooled.loc["__all__", "folds"] == 2
    assert set(pooled["verdict"]) <= {
        "holds_up",
        "below_baseline",
        "not_above_min",
        "too_few_trades",
        "no_choice",
    }
    assert (rows["month"] == "2024-01").all()
    # The materialization shows which callers hold up and which do not.
    record = instance.fetch_materializations(dg.AssetKey("walk_forward"), limit=1).records[0]
    metadata = record.asset_materialization.metadata
    assert "caller_name" in metadata["holds_up"].value + metadata["does_not_hold_up"].value
    assert metadata["folds"].value == 2
    png_of(metadata["in_vs_out_of_sample"].value)
    assert "walk_forward.picture" in read_manifest(outcome.run_dir).timing
    # The catalog accepts the run directory and lists its walk_forward artifact.
    with catalog_writer(settings.catalog_path) as conn:
        report = register_runs(conn, settings.runs_dir, [outcome.run_dir])
        assert report.registered == [outcome.run_id] and not report.rejected
        kinds = conn.execute(
            "SELECT artifact_type FROM backtest_artifacts_catalog WHERE run_id = ?",
            [outcome.run_id],
        ).fetchall()
    assert ("walk_forward",) in kinds


def test_walk_forward_refuses_a_baseline_outside_the_grid(
    defs: dg.Definitions, instance: dg.DagsterInstance
) -> None:
    [outcome] = execute_partitions(
        defs,
        "walk_forward_search",
        ["2024-01"],
        instance=instance,
        run_config=config(baseline_policy_id="nope"),
        label="w",
    )
    assert not outcome.success and "baseline_policy_id" in (outcome.error or "")
    assert (outcome.run_dir / "_FAILED").exists()
