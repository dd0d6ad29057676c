"""The code location: every asset, check, job, sensor and resource, built in one place."""

from __future__ import annotations

import dagster as dg
from dagster_duckdb import DuckDBResource

from quantbot_assets.defs.backtest.definitions import backtest_definitions
from quantbot_assets.defs.catalog.assets import CatalogLocations
from quantbot_assets.defs.catalog.definitions import catalog_definitions
from quantbot_assets.defs.policies.definitions import policies_definitions
from quantbot_assets.executor import backtest_executor
from quantbot_assets.io_manager import RunDirIOManager
from quantbot_assets.resources import (
    BacktestParams,
    CallsSourceResource,
    CandleSourceResource,
    PolicyRegistryResource,
)
from quantbot_assets.run_directories import RunDirectories
from quantbot_assets.settings import Settings
from quantbot_assets.stale_runs import stale_run_sensor


def build_resources(settings: Settings) -> dict[str, object]:
    """Every resource, each path configured once (assets, IO manager and sensors share them)."""
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
    """The features' definitions (defs/), with the resources, executor and stale-run sensor."""
    resources = build_resources(settings)
    run_dirs = resources["run_dirs"]
    assert isinstance(run_dirs, RunDirectories)
    return dg.Definitions.merge(
        backtest_definitions(),
        catalog_definitions(run_dirs),
        policies_definitions(),
        dg.Definitions(sensors=[stale_run_sensor], resources=resources, executor=backtest_executor),
    )


defs = build_definitions(Settings.from_env())
