"""The catalog sensor and assets on real run directories written through Dagster."""

from __future__ import annotations

import dagster as dg
import duckdb
import pandas as pd

from quantbot_assets.defs.policies.partitions import ensure_policy_partition
from quantbot_assets.launch import execute_partitions, params_run_config
from quantbot_assets.settings import Settings
from quantbot_assets_tests.platform.conftest import TEST_PARAMS


def test_sensor_requests_a_catalog_run_and_the_catalog_and_exports_follow(
    defs: dg.Definitions, instance: dg.DagsterInstance, settings: Settings
) -> None:
    config = params_run_config(TEST_PARAMS)
    [truth] = execute_partitions(
        defs, "path_only_backtest", ["2024-01-01"], instance=instance, run_config=config, label="t"
    )
    ensure_policy_partition(instance, "fixed-stop-5pct")
    [policy] = execute_partitions(
        defs,
        "policy_backtest",
        ["2024-01-01|fixed-stop-5pct"],
        instance=instance,
        run_config=config,
        label="p",
    )
    # A run directory that will be rejected: a marker but no manifest.
    broken = settings.runs_dir / truth.run_dir.parent.name / "run_id=broken-run"
    broken.mkdir(parents=True)
    (broken / "_SUCCESS").write_text("")

    sensor = defs.resolve_sensor_def("run_catalog_sensor")
    context = dg.build_sensor_context(instance=instance, cursor=None, definitions=defs)
    result = sensor(context)
    assert isinstance(result, dg.SensorResult)
    [request] = result.run_requests or []
    requested = request.run_config["ops"]["backtest_catalog"]["config"]["run_dirs"]
    assert set(requested) == {str(truth.run_dir), str(policy.run_dir), str(broken)}
    assert result.cursor and len(result.cursor) < 2000

    job = defs.resolve_job_def("catalog_sync")
    run = job.execute_in_process(
        instance=instance, run_config=request.run_config, tags=request.tags
    )
    assert run.success
    with duckdb.connect(str(settings.catalog_path), read_only=True) as conn:
        runs = conn.execute(
            "SELECT run_id, run_type, status FROM backtest_runs_catalog ORDER BY run_type"
        ).fetchall()
        assert runs == [
            (truth.run_id, "path-only", "completed"),
            (policy.run_id, "policy", "completed"),
        ]
        artifacts = {
            r[0]
            for r in conn.execute("SELECT artifact_type FROM backtest_artifacts_catalog").fetchall()
        }
        assert artifacts == {"alerts", "paths", "errors", "trades", "summary"}
    exported = pd.read_parquet(settings.exports_dir / "paths.parquet")
    assert set(exported["run_id"]) == {truth.run_id}
    assert (settings.exports_dir / "_export_status.json").exists()
    meta = run.asset_materializations_for_node("backtest_catalog")[0].metadata
    assert meta["rejected"].value == 1 and "broken-run" in meta["rejected_runs"].value

    # Nothing new: the next tick requests nothing; a re-sync changes nothing.
    again = sensor(
        dg.build_sensor_context(instance=instance, cursor=result.cursor, definitions=defs)
    )
    assert not (again.run_requests or [])
    run = job.execute_in_process(instance=instance, run_config=request.run_config)
    assert run.success
    with duckdb.connect(str(settings.catalog_path), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM backtest_runs_catalog").fetchone() == (2,)
