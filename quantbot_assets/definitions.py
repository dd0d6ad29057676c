"""The code location: every asset, check, job, sensor and resource, built in one place."""

from __future__ import annotations

import dagster as dg
from dagster_duckdb import DuckDBResource

from quantbot_assets.assets import catalog, checks, optimization, policy, truth
from quantbot_assets.assets.catalog import CatalogLocations
from quantbot_assets.io_manager import RunDirectories, RunDirIOManager
from quantbot_assets.jobs import (
    backtest_executor,
    catalog_job,
    frontier_job,
    path_only_job,
    policy_job,
    register_policy,
    walk_forward_job,
)
from quantbot_assets.resources import (
    BacktestParams,
    CallsSourceResource,
    CandleSourceResource,
    PolicyRegistryResource,
)
from quantbot_assets.sensors import build_catalog_sensor, build_policy_registry_sensor
from quantbot_assets.settings import Settings
from quantbot_assets.stale_runs import build_stale_run_sensor


def build_resources(settings: Settings) -> dict[str, object]:
    run_dirs = RunDirectories(
        runs_dir=str(settings.runs_dir), project_dir=str(settings.project_dir)
    )
    return {
        "run_dirs": run_dirs,
        "run_dir_io_manager": RunDirIOManager(run_dirs=run_dirs),
        "params": BacktestParams.configure_at_launch(),
        "calls_source": CallsSourceResource(
            path=str(settings.calls_path),
            table=settings.calls_table,
            sample_data_dir=str(settings.data_dir) if settings.uses_sample_data else None,
            url=settings.calls_url,
        ),
        "candle_source": CandleSourceResource(
            path=str(settings.candles_path), table=settings.candles_table, url=settings.candles_url
        ),
        "policy_registry": PolicyRegistryResource(path=str(settings.policy_registry)),
        "catalog_db": DuckDBResource(database=str(settings.catalog_path)),
        "locations": CatalogLocations(exports_dir=str(settings.exports_dir)),
    }


def build_definitions(settings: Settings) -> dg.Definitions:
    assets = dg.load_assets_from_modules([truth, policy, optimization, catalog])
    asset_checks = dg.load_asset_checks_from_modules([checks])
    resources = build_resources(settings)
    run_dirs = resources["run_dirs"]
    assert isinstance(run_dirs, RunDirectories)
    return dg.Definitions(
        assets=assets,
        asset_checks=asset_checks,
        jobs=[
            path_only_job,
            policy_job,
            frontier_job,
            walk_forward_job,
            catalog_job,
            register_policy,
        ],
        sensors=[
            build_policy_registry_sensor(settings.policy_registry),
            build_catalog_sensor(settings.runs_dir),
            build_stale_run_sensor(run_dirs),
        ],
        resources=resources,
        executor=backtest_executor,
    )


defs = build_definitions(Settings.from_env())
