"""The backtest feature's definitions: its assets, their checks and its jobs."""

import dagster as dg

from quantbot_assets.defs.backtest import checks, optimization, policy, truth
from quantbot_assets.defs.backtest.jobs import (
    frontier_job,
    path_only_job,
    policy_job,
    walk_forward_job,
)


def backtest_definitions() -> dg.Definitions:
    return dg.Definitions(
        assets=dg.load_assets_from_modules([truth, policy, optimization]),
        asset_checks=dg.load_asset_checks_from_modules([checks]),
        jobs=[path_only_job, policy_job, frontier_job, walk_forward_job],
    )
