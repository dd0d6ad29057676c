"""A run is complete for the catalog only once its asset checks ran.

`_SUCCESS` is written with the last artifact; the run's schema, conservation
and within-peak checks run after it in the same Dagster run. The run records
which checks it will run (`planned_checks`) and each check's outcome
(`checks/<name>.json`); the catalog waits for every planned outcome.
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import duckdb

from quantbot_assets.catalog.register import sync_catalog
from quantbot_assets.catalog.tables import CHECKS_TABLE, RUNS_TABLE
from quantbot_assets.defs.policies.partitions import ensure_policy_partition
from quantbot_assets.launch import execute_range, params_run_config
from quantbot_assets.rundir import SUCCESS_MARKER, read_manifest, recorded_checks
from quantbot_assets.settings import Settings
from quantbot_assets_tests.platform.conftest import TEST_PARAMS

CONFIG = params_run_config(TEST_PARAMS)
DAY_CHECKS = {
    "paths_calls_conserved",
    "alerts_schema_as_declared",
    "paths_schema_as_declared",
    "errors_schema_as_declared",
}
POLICY_CHECKS = {
    "trades_return_within_peak",
    "trades_schema_as_declared",
    "summary_schema_as_declared",
}


def _records(run_dir: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (run_dir / "checks").glob("*.json")}


def test_a_run_records_its_planned_checks_and_each_outcome(
    defs: dg.Definitions, instance: dg.DagsterInstance, settings: Settings, tmp_path: Path
) -> None:
    truth = execute_range(
        defs,
        "path_only_backtest",
        "2024-01-01",
        "2024-01-02",
        instance=instance,
        run_config=CONFIG,
        label="t",
    )
    assert truth.success, truth.error
    assert set(read_manifest(truth.run_dir).planned_checks or []) == DAY_CHECKS
    records = _records(truth.run_dir)
    assert set(records) == DAY_CHECKS
    assert all(r["outcome"] == "passed" and r["passed"] for r in records.values())
    assert records["paths_calls_conserved"]["metadata"]["days"] == "2"

    ensure_policy_partition(instance, "fixed-stop-5pct")
    policy = execute_range(
        defs,
        "policy_backtest",
        "2024-01-01|fixed-stop-5pct",
        "2024-01-02|fixed-stop-5pct",
        instance=instance,
        run_config=CONFIG,
        label="p",
    )
    assert policy.success, policy.error
    assert set(read_manifest(policy.run_dir).planned_checks or []) == POLICY_CHECKS
    assert recorded_checks(policy.run_dir) == POLICY_CHECKS

    with duckdb.connect(str(tmp_path / "c.duckdb")) as conn:
        report = sync_catalog(conn, settings.runs_dir)
        assert sorted(report.registered) == sorted([truth.run_id, policy.run_id])
        rows = conn.execute(
            f"SELECT run_id, checks_passed, checks_failed FROM {RUNS_TABLE}"
        ).fetchall()
        assert {r[0]: r[1:] for r in rows} == {truth.run_id: (4, 0), policy.run_id: (3, 0)}
        stored = conn.execute(
            f"SELECT check_name, outcome FROM {CHECKS_TABLE} WHERE run_id = ?", [truth.run_id]
        ).fetchall()
        assert dict(stored) == dict.fromkeys(DAY_CHECKS, "passed")


def test_a_run_with_some_checks_selected_plans_only_those(
    defs: dg.Definitions, instance: dg.DagsterInstance
) -> None:
    """The UI's "Materialize" with a subset of checks, or `dagster asset materialize`."""
    job = defs.resolve_job_def("path_only_backtest")
    keep = dg.AssetCheckKey(dg.AssetKey("alerts"), "alerts_schema_as_declared")
    lookahead = dg.AssetCheckKey(dg.AssetKey("paths"), "paths_no_lookahead")
    subset = job.get_subset(
        asset_selection={dg.AssetKey("alerts"), dg.AssetKey("paths"), dg.AssetKey("errors")},
        asset_check_selection={keep, lookahead},
    )
    result = subset.execute_in_process(
        instance=instance, run_config=CONFIG, partition_key="2024-01-01"
    )
    assert result.success
    [run_dir] = list(Path(defs.resources["run_dirs"].runs_dir).glob("*/run_id=*"))  # type: ignore[union-attr]
    assert (run_dir / SUCCESS_MARKER).exists()
    assert read_manifest(run_dir).planned_checks == ["alerts_schema_as_declared"]
    assert recorded_checks(run_dir) == {"alerts_schema_as_declared"}


def test_a_check_that_raises_records_an_error(
    defs: dg.Definitions, instance: dg.DagsterInstance, monkeypatch
) -> None:
    from quantbot_assets.defs.backtest import checks

    def broken(context, run_dirs):
        raise RuntimeError("check crashed")

    monkeypatch.setattr(checks, "calls_conserved_result", broken)
    outcome = execute_range(
        defs,
        "path_only_backtest",
        "2024-01-01",
        "2024-01-01",
        instance=instance,
        run_config=CONFIG,
        label="t",
    )
    assert (outcome.run_dir / SUCCESS_MARKER).exists()  # the artifacts are all there
    records = _records(outcome.run_dir)
    assert set(records) == DAY_CHECKS  # every planned check has an outcome
    assert records["paths_calls_conserved"]["outcome"] == "error"
    assert "check crashed" in records["paths_calls_conserved"]["detail"]
