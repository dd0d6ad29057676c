"""The code location: every asset, check, job, sensor and resource, built in one place."""

from __future__ import annotations

import dagster as dg

from quantbot_assets.assets import checks, inputs, optimization, policy, truth
from quantbot_assets.io_manager import RunDirectories, RunDirIOManager
from quantbot_assets.resources import (
    BacktestParams,
    CallsSourceResource,
    CandleSourceResource,
    PolicyRegistryResource,
)
from quantbot_assets.sensors import build_policy_registry_sensor
from quantbot_assets.settings import Settings

path_only_job = dg.define_asset_job(
    "path_only_backtest",
    selection=dg.AssetSelection.assets("alerts", "paths", "errors"),
    description="Calls, truth layer and errors of one day (a path-only run directory).",
)
policy_job = dg.define_asset_job(
    "policy_backtest",
    selection=dg.AssetSelection.assets("trades", "summary"),
    description="Trades and summary of one policy on one day (a policy run directory).",
)
frontier_job = dg.define_asset_job(
    "frontier_search",
    selection=dg.AssetSelection.assets("frontier"),
    description="Policy-grid frontier of one month (an optimization run directory).",
)


def build_resources(settings: Settings) -> dict[str, object]:
    run_dirs = RunDirectories(runs_dir=str(settings.runs_dir), project_dir=str(settings.project_dir))
    return {
        "run_dirs": run_dirs,
        "run_dir_io_manager": RunDirIOManager(run_dirs=run_dirs),
        "params": BacktestParams.configure_at_launch(),
        "calls_source": CallsSourceResource(
            path=str(settings.calls_path),
            table=settings.calls_table,
            sample_data_dir=str(settings.data_dir) if settings.uses_sample_data else None,
        ),
        "candle_source": CandleSourceResource(
            path=str(settings.candles_path), table=settings.candles_table
        ),
        "policy_registry": PolicyRegistryResource(path=str(settings.policy_registry)),
    }


def build_definitions(settings: Settings) -> dg.Definitions:
    assets = dg.load_assets_from_modules([inputs, truth, policy, optimization])
    asset_checks = dg.load_asset_checks_from_modules([checks])
    return dg.Definitions(
        assets=assets,
        asset_checks=asset_checks,
        jobs=[path_only_job, policy_job, frontier_job],
        sensors=[build_policy_registry_sensor(settings.policy_registry)],
        resources=build_resources(settings),
        executor=dg.in_process_executor,
    )


defs = build_definitions(Settings.from_env())
