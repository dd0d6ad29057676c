"""The `optimization` group: the policy-grid frontier of a month of calls."""


import json
import time

import dagster as dg
import pandas as pd
from pydantic import Field

from quantbot_assets.assets.truth import load_day_candles
from quantbot_assets.engine import default_grid, prepare_candles, search_frontier
from quantbot_assets.io_manager import ArtifactFrame, RunDirectories, mark_run_failed
from quantbot_assets.partitions import month_partitions_def, parse_partition_key
from quantbot_assets.reports import markdown_table
from quantbot_assets.resources import BacktestParams, CandleSourceResource


class FrontierConfig(dg.Config):
    objective: str = Field(default="median_return_bps", description="Column to maximise")
    min_trades: int = Field(default=20, description="Constraint: trades_count >= min_trades")
    max_stop_out_rate: float = Field(default=0.8, description="Constraint: stop_out_rate <= this")
    grid_json: str | None = Field(
        default=None,
        description='Policy grid as JSON {"policy_id": {policy}, ...}; default: the engine grid',
    )


@dg.asset(
    partitions_def=month_partitions_def,
    group_name="optimization",
    io_manager_key="run_dir_io_manager",
    hooks={mark_run_failed},
    kinds={"parquet"},
)
def frontier(
    context: dg.AssetExecutionContext,
    config: FrontierConfig,
    alerts: pd.DataFrame,
    candle_source: CandleSourceResource,
    run_dirs: RunDirectories,
    params: BacktestParams,
) -> dg.Output[ArtifactFrame]:
    """Policy grid over a month of calls, overall and per caller: scores, constraints, Pareto, rank."""
    run_dirs.begin(context)
    run_dirs.mark_running(context)
    window = parse_partition_key(context.partition_key)
    grid = json.loads(config.grid_json) if config.grid_json else default_grid()
    t0 = time.perf_counter()
    candles = load_day_candles(candle_source, alerts, params)
    t1 = time.perf_counter()
    prepared, _issues = prepare_candles(candles, interval=params.interval)
    rows = search_frontier(
        alerts, prepared, grid,
        objective=config.objective, min_trades=config.min_trades,
        max_stop_out_rate=config.max_stop_out_rate, run_id=context.run_id,
        **params.policy_params(),
    )
    t2 = time.perf_counter()
    context.log.info(
        f"frontier {window.key}: {len(grid)} policies x {len(alerts)} calls, "
        f"{len(rows)} rows; candles {(t1 - t0) * 1000:.0f} ms, grid {(t2 - t1) * 1000:.0f} ms"
    )
    best = rows[(rows["caller_name"] == "__all__") & rows["meets_constraints"]].sort_values("rank")
    return dg.Output(
        ArtifactFrame(
            frame=rows,
            parameters={**params.policy_params(), "objective": config.objective,
                        "min_trades": config.min_trades,
                        "max_stop_out_rate": config.max_stop_out_rate,
                        "grid_size": len(grid)},
            dataset={"from": window.first_day, "to": window.last_day,
                     "interval": params.interval, "calls_count": len(alerts)},
            timing={"frontier.load_candles": round((t1 - t0) * 1000, 3),
                    "frontier.search": round((t2 - t1) * 1000, 3)},
        ),
        metadata={
            "policies": len(grid),
            "rows": len(rows),
            "best_overall": dg.MetadataValue.md(markdown_table(
                best[["rank", "policy_id", "trades_count", "median_return_bps", "avg_return_bps",
                      "stop_out_rate", "pareto"]], max_rows=15)),
        },
    )
