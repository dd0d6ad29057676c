"""One request, one run: ranges run as one Dagster run and one run directory.

Every partition still gets its own materialization; results are identical to
one run per partition; a day's truth layer is reused only when it was computed
from the same inputs and parameters by a run that completed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from quantbot_assets.catalog.exports import refresh_exports
from quantbot_assets.catalog.register import sync_catalog
from quantbot_assets.definitions import build_definitions
from quantbot_assets.defs.policies.partitions import ensure_policy_partition
from quantbot_assets.launch import (
    execute_partitions,
    execute_range,
    params_run_config,
)
from quantbot_assets.rundir import read_manifest
from quantbot_assets.settings import Settings
from quantbot_assets_tests.platform.conftest import TEST_PARAMS
from quantbot_assets_tests.platform.test_seed_sql import TIME_SERIES
from quantbot_assets_tests.test_pictures import png_of

CONFIG = params_run_config(TEST_PARAMS)
POLICY = "fixed-stop-5pct"


def run_range(defs, instance, job: str, first: str, last: str, config=CONFIG):
    return execute_range(defs, job, first, last, instance=instance, run_config=config, label=job)


def materializations(instance: dg.DagsterInstance, asset: str) -> dict[str, dict]:
    """Newest materialization metadata of each partition of `asset`."""
    records = instance.fetch_materializations(dg.AssetKey(asset), limit=1000).records
    out: dict[str, dict] = {}
    for record in reversed(records):  # oldest first, newest wins
        m = record.asset_materialization
        assert m is not None and m.partition is not None
        out[str(m.partition)] = {
            "run_id": record.run_id,
            **{k: getattr(v, "value", v) for k, v in m.metadata.items()},
        }
    return out


def test_a_range_is_one_run_with_a_materialization_per_partition(
    defs: dg.Definitions, instance: dg.DagsterInstance
) -> None:
    truth = run_range(defs, instance, "path_only_backtest", "2024-01-01", "2024-01-02")
    assert truth.success, truth.error
    manifest = read_manifest(truth.run_dir)
    assert manifest.partition_keys["paths"] == ["2024-01-01", "2024-01-02"]
    assert manifest.artifacts["paths"].partition_keys == ["2024-01-01", "2024-01-02"]
    assert (manifest.dataset.from_, manifest.dataset.to) == ("2024-01-01", "2024-01-02")
    paths = pd.read_parquet(truth.run_dir / "truth/paths.parquet")
    days = pd.to_datetime(paths["alert_ts_ms"], unit="ms", utc=True).dt.strftime("%Y-%m-%d")
    per_day = days.value_counts().to_dict()
    assert set(per_day) == {"2024-01-01", "2024-01-02"}
    recorded = materializations(instance, "paths")
    for day, rows in per_day.items():
        assert recorded[day]["run_id"] == truth.run_id
        assert recorded[day]["dagster/row_count"] == rows  # each partition's own count
        assert recorded[day]["truth_key"]
    # The earlier system's time-series SQL runs unchanged on the multi-day file.
    series = duckdb.sql(TIME_SERIES.format(paths=truth.run_dir / "truth/paths.parquet"))
    assert [str(row[0].date()) for row in series.fetchall()] == ["2024-01-01", "2024-01-02"]

    ensure_policy_partition(instance, POLICY)
    policy = run_range(
        defs, instance, "policy_backtest", f"2024-01-01|{POLICY}", f"2024-01-02|{POLICY}"
    )
    assert policy.success, policy.error
    files = {str(p.relative_to(policy.run_dir)) for p in policy.run_dir.rglob("*") if p.is_file()}
    assert "truth/paths.parquet" not in files  # both days reused the completed truth run
    summary = pd.read_parquet(policy.run_dir / "results/summary.parquet")
    assert list(summary["day"]) == ["2024-01-01", "2024-01-02"]
    for metadata in materializations(instance, "summary").values():
        png_of(metadata["return_distribution_chart"])
    trades = materializations(instance, "trades")
    assert {k: v["truth_run_id"] for k, v in trades.items()} == {
        f"2024-01-01|{POLICY}": truth.run_id,
        f"2024-01-02|{POLICY}": truth.run_id,
    }


def test_one_run_for_the_range_gives_the_same_trades_as_one_run_per_day(
    defs: dg.Definitions, tmp_path: Path
) -> None:
    keys = [f"2024-01-01|{POLICY}", f"2024-01-02|{POLICY}"]
    frames = []
    for name, per_day in (("per-day", True), ("range", False)):
        home = tmp_path / name
        home.mkdir()
        with dg.instance_for_test(temp_dir=str(home)) as instance:
            ensure_policy_partition(instance, POLICY)
            if per_day:
                outcomes = execute_partitions(
                    defs,
                    "path_only_backtest",
                    ["2024-01-01", "2024-01-02"],
                    instance=instance,
                    run_config=CONFIG,
                    label="t",
                )
                outcomes += execute_partitions(
                    defs, "policy_backtest", keys, instance=instance, run_config=CONFIG, label="p"
                )
                dirs = [o.run_dir for o in outcomes[2:]]
            else:
                outcome = run_range(defs, instance, "policy_backtest", keys[0], keys[1])
                dirs = [outcome.run_dir]
            trades = pd.concat([pd.read_parquet(d / "policy/trades.parquet") for d in dirs])
            frames.append(trades.drop(columns="run_id").sort_values("call_id", ignore_index=True))
    assert len(frames[0]) > 0
    pd.testing.assert_frame_equal(frames[0], frames[1])


def test_a_policy_run_on_other_calls_does_not_reuse_the_truth_layer(
    instance: dg.DagsterInstance, settings: Settings, tmp_path: Path
) -> None:
    truth = run_range(
        build_definitions(settings), instance, "path_only_backtest", "2024-01-01", "2024-01-01"
    )
    assert truth.success
    calls = pd.read_parquet(settings.calls_path)
    fewer = tmp_path / "fewer.parquet"
    calls[calls["call_id"].isin(["c01", "c02", "c03"])].to_parquet(fewer, index=False)
    other = build_definitions(dataclasses.replace(settings, calls_path=fewer))
    ensure_policy_partition(instance, POLICY)
    policy = run_range(
        other, instance, "policy_backtest", f"2024-01-01|{POLICY}", f"2024-01-01|{POLICY}"
    )
    assert policy.success, policy.error
    trades = pd.read_parquet(policy.run_dir / "policy/trades.parquet")
    assert set(trades["call_id"]) == {"c01", "c02", "c03"}
    assert (policy.run_dir / "truth/paths.parquet").exists()  # computed from these calls


def test_a_truth_layer_of_a_run_that_never_completed_is_not_reused(
    defs: dg.Definitions, instance: dg.DagsterInstance
) -> None:
    truth = run_range(defs, instance, "path_only_backtest", "2024-01-01", "2024-01-01")
    (truth.run_dir / "_SUCCESS").unlink()  # as if killed after paths was recorded
    ensure_policy_partition(instance, POLICY)
    policy = run_range(
        defs, instance, "policy_backtest", f"2024-01-01|{POLICY}", f"2024-01-01|{POLICY}"
    )
    assert policy.success, policy.error
    assert (policy.run_dir / "truth/paths.parquet").exists()


@pytest.mark.parametrize("interval", ["5m"])
def test_exports_keep_each_partition_and_parameter_set_apart(
    defs: dg.Definitions, instance: dg.DagsterInstance, settings: Settings, interval: str
) -> None:
    wide = run_range(defs, instance, "path_only_backtest", "2024-01-01", "2024-01-02")
    # A later run of one day with the same parameters replaces that day only;
    # a run at another interval sits beside it.
    narrow = run_range(defs, instance, "path_only_backtest", "2024-01-02", "2024-01-02")
    other = run_range(
        defs,
        instance,
        "path_only_backtest",
        "2024-01-01",
        "2024-01-01",
        params_run_config({**TEST_PARAMS, "interval": interval}),
    )
    assert wide.success and narrow.success and other.success
    with duckdb.connect(str(settings.catalog_path)) as conn:
        sync_catalog(conn, settings.runs_dir)
        refresh_exports(conn, settings.exports_dir)
    paths = pd.read_parquet(settings.exports_dir / "paths.parquet")
    paths["day"] = pd.to_datetime(paths["alert_ts_ms"], unit="ms", utc=True).dt.strftime("%Y-%m-%d")
    sources = paths.groupby(["interval", "day"])["run_id"].unique().map(list).to_dict()
    assert sources == {
        ("1m", "2024-01-01"): [wide.run_id],
        ("1m", "2024-01-02"): [narrow.run_id],
        (interval, "2024-01-01"): [other.run_id],
    }
    assert paths.groupby("interval")["params_hash"].nunique().eq(1).all()
    assert paths["params_hash"].nunique() == 2
    sets = pd.read_parquet(settings.exports_dir / "parameter_sets.parquet")
    assert set(paths["params_hash"]) <= set(sets["params_hash"])
