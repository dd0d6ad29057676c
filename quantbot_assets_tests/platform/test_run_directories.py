"""Run directories written through Dagster: layout, manifest lifecycle, cross-run loads, failures."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq

from quantbot_assets.defs.policies.partitions import ensure_policy_partition
from quantbot_assets.launch import execute_partitions, params_run_config
from quantbot_assets.rundir import read_manifest
from quantbot_assets.schemas import ARTIFACT_SCHEMAS
from quantbot_assets.settings import Settings
from quantbot_assets_tests.platform.conftest import TEST_PARAMS
from quantbot_assets_tests.platform.tiny_data import TinyData


def run(defs: dg.Definitions, instance: dg.DagsterInstance, job: str, keys: list[str], params=None):
    return execute_partitions(
        defs,
        job,
        keys,
        instance=instance,
        run_config=params_run_config({**TEST_PARAMS, **(params or {})}),
        label=job,
    )


def files_of(run_dir: Path) -> set[str]:
    return {str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file()}


def test_path_only_run_directory_layout_and_manifest(
    defs: dg.Definitions, instance: dg.DagsterInstance, settings: Settings, tiny: TinyData
) -> None:
    [outcome] = run(defs, instance, "path_only_backtest", ["2024-01-01"])
    assert outcome.success, outcome.error
    run_dir = outcome.run_dir
    # runs/YYYY-MM/run_id=<dagster run id>/, YYYY-MM = month the run was created
    assert run_dir.parent.parent == settings.runs_dir
    assert run_dir.name == f"run_id={outcome.run_id}"
    assert len(run_dir.parent.name) == 7 and run_dir.parent.name[4] == "-"
    files = files_of(run_dir)
    assert {
        "run.json",
        "_SUCCESS",
        "inputs/alerts.parquet",
        "truth/paths.parquet",
        "errors/errors.parquet",
    } <= files
    assert "_FAILED" not in files
    assert not [f for f in files if f.endswith(".tmp")]

    manifest = read_manifest(run_dir)
    assert manifest.status == "completed" and manifest.run_type == "path-only"
    assert manifest.started_at and manifest.completed_at and manifest.created_at
    assert manifest.job_name == "path_only_backtest"
    assert manifest.partition_keys == {
        "alerts": ["2024-01-01"],
        "paths": ["2024-01-01"],
        "errors": ["2024-01-01"],
    }
    assert manifest.dataset.from_ == "2024-01-01" and manifest.dataset.to == "2024-01-01"
    assert manifest.dataset.interval == "1m"
    assert manifest.parameters["horizon_ms"] == TEST_PARAMS["horizon_ms"]
    assert manifest.config_hash
    for name, entry in manifest.artifacts.items():
        table = pq.read_table(run_dir / entry.path)
        assert table.num_rows == entry.rows
        assert table.schema.equals(ARTIFACT_SCHEMAS[name], check_metadata=False)
    assert {"alerts.load", "truth.compute", "total"} <= set(manifest.timing)
    [features] = manifest.features  # the prepared windows, stored for policy runs
    assert (run_dir / features.path).is_file() and features.interval == "1m"

    # Every input row ends in exactly one of alerts-rejects, paths or exclusions.
    alerts = pd.read_parquet(run_dir / "inputs/alerts.parquet")
    paths = pd.read_parquet(run_dir / "truth/paths.parquet")
    errors = pd.read_parquet(run_dir / "errors/errors.parquet")
    assert len(alerts) + (errors["stage"] == "alerts").sum() == tiny.n_calls_day1
    excluded = errors[errors["reason"].isin(["no_candles", "invalid_entry_price"])]
    assert set(paths["call_id"]) | set(excluded["call_id"]) == set(alerts["call_id"])
    assert not set(paths["call_id"]) & set(excluded["call_id"])
    assert "no_candles" in set(excluded["reason"])
    assert (paths["run_id"] == outcome.run_id).all()


def test_policy_run_loads_truth_written_by_an_earlier_run(
    defs: dg.Definitions, instance: dg.DagsterInstance
) -> None:
    [truth] = run(defs, instance, "path_only_backtest", ["2024-01-02"])
    ensure_policy_partition(instance, "fixed-stop-5pct")
    [policy] = run(defs, instance, "policy_backtest", ["2024-01-02|fixed-stop-5pct"])
    assert truth.success and policy.success, policy.error
    assert policy.run_dir != truth.run_dir
    manifest = read_manifest(policy.run_dir)
    assert manifest.run_type == "policy" and manifest.status == "completed"
    assert manifest.parameters["policy_id"] == "fixed-stop-5pct"
    assert manifest.parameters["policy"]["stop_loss_bps"] == 500
    trades = pd.read_parquet(policy.run_dir / "policy/trades.parquet")
    paths = pd.read_parquet(truth.run_dir / "truth/paths.parquet")
    assert set(trades["call_id"]) == set(paths["call_id"])
    summary = pd.read_parquet(policy.run_dir / "results/summary.parquet")
    assert summary["trades_count"].iloc[0] == len(trades)
    alerts = pd.read_parquet(truth.run_dir / "inputs/alerts.parquet")
    assert summary["calls_processed"].iloc[0] == len(alerts)
    assert summary["calls_processed"].iloc[0] == summary["calls_excluded"].iloc[0] + len(trades)
    # The checks ran and passed in the same run.
    checks = instance.get_latest_asset_check_evaluation_record(
        dg.AssetCheckKey(dg.AssetKey("trades"), "trades_return_within_peak")
    )
    assert checks is not None


def test_policy_run_computes_its_truth_when_only_other_parameters_have_one(
    defs: dg.Definitions, instance: dg.DagsterInstance
) -> None:
    [truth_1m] = run(defs, instance, "path_only_backtest", ["2024-01-01"])
    ensure_policy_partition(instance, "fixed-stop-5pct")
    [policy] = run(
        defs, instance, "policy_backtest", ["2024-01-01|fixed-stop-5pct"], {"interval": "5m"}
    )
    assert policy.success, policy.error
    # The 1m truth layer was not used: the 5m one was computed in the same run.
    files = files_of(policy.run_dir)
    assert {"truth/paths.parquet", "inputs/alerts.parquet", "policy/trades.parquet"} <= files
    paths = pd.read_parquet(policy.run_dir / "truth/paths.parquet")
    assert set(paths["interval"]) == {"5m"}
    manifest = read_manifest(policy.run_dir)
    assert manifest.run_type == "policy" and manifest.status == "completed"
    assert (
        manifest.artifacts["paths"].params_hash
        != read_manifest(truth_1m.run_dir).artifacts["paths"].params_hash
    )
    # Both truth layers stay: a later 1m policy run reuses the 1m one.
    [again] = run(defs, instance, "policy_backtest", ["2024-01-01|fixed-stop-5pct"])
    assert again.success and "truth/paths.parquet" not in files_of(again.run_dir)


def test_failed_run_is_marked_and_a_rerun_succeeds(
    instance: dg.DagsterInstance, settings: Settings, tmp_path: Path
) -> None:
    import dataclasses

    from quantbot_assets.definitions import build_definitions

    broken = dataclasses.replace(settings, candles_path=tmp_path / "missing.parquet")
    [failed] = run(build_definitions(broken), instance, "path_only_backtest", ["2024-01-01"])
    assert not failed.success
    assert (failed.run_dir / "_FAILED").exists() and not (failed.run_dir / "_SUCCESS").exists()
    manifest = json.loads((failed.run_dir / "run.json").read_text())
    assert manifest["status"] == "failed"
    assert "FAILED truth_layer:" in (failed.run_dir / "logs/stdout.txt").read_text()
    assert "truth_layer" in manifest["error"] and "missing.parquet" in manifest["error"]

    [again] = run(build_definitions(settings), instance, "path_only_backtest", ["2024-01-01"])
    assert again.success and (again.run_dir / "_SUCCESS").exists()
    assert again.run_dir != failed.run_dir


def test_unknown_policy_fails_the_run_with_its_name(
    defs: dg.Definitions, instance: dg.DagsterInstance
) -> None:
    run(defs, instance, "path_only_backtest", ["2024-01-01"])
    ensure_policy_partition(instance, "not-in-registry")
    [outcome] = run(defs, instance, "policy_backtest", ["2024-01-01|not-in-registry"])
    assert not outcome.success
    assert "not-in-registry" in json.loads((outcome.run_dir / "run.json").read_text())["error"]


def test_materialize_each_asset_with_dg_materialize(
    defs: dg.Definitions, instance: dg.DagsterInstance, settings: Settings
) -> None:
    """`dg.materialize` (what tests and notebooks use) drives the same assets and IO manager."""
    from quantbot_assets.definitions import build_resources

    assets = list(defs.assets or [])
    resources = build_resources(settings)
    config = {"resources": {"params": {"config": TEST_PARAMS}}}
    result = dg.materialize(
        assets,
        selection=["alerts", "paths", "errors"],
        partition_key="2024-01-01",
        instance=instance,
        resources=resources,
        run_config=config,
    )
    assert result.success
    ensure_policy_partition(instance, "ladder-2x-3x-5x")
    result = dg.materialize(
        assets,
        selection=["trades", "summary"],
        partition_key="2024-01-01|ladder-2x-3x-5x",
        instance=instance,
        resources=resources,
        run_config=config,
    )
    assert result.success
    [trades] = [
        m
        for m in result.asset_materializations_for_node("policy_layer")
        if m.asset_key == dg.AssetKey("trades")
    ]
    metadata = trades.metadata
    assert Path(str(metadata["path"].value)).exists()
    assert "exit_reason" in metadata["exit_reasons"].value
