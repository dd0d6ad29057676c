"""The backtest jobs: one per kind of run directory."""

import dagster as dg

path_only_job = dg.define_asset_job(
    "path_only_backtest",
    selection=dg.AssetSelection.groups("inputs", "truth"),
    description="Calls, truth layer and errors of one day (a path-only run directory).",
)
policy_job = dg.define_asset_job(
    "policy_backtest",
    selection=dg.AssetSelection.groups("policy"),
    description="Trades and summary of one policy on one day (a policy run directory).",
)
# The two searches share the `optimization` group, each is a job of its own.
frontier_job = dg.define_asset_job(
    "frontier_search",
    selection=dg.AssetSelection.assets("frontier"),
    description="Policy-grid frontier of one month (an optimization run directory).",
)
walk_forward_job = dg.define_asset_job(
    "walk_forward_search",
    selection=dg.AssetSelection.assets("walk_forward"),
    description="Walk-forward frontier over months: chosen on train days, scored on test days.",
)
