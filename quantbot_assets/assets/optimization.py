"""The `optimization` group: the policy-grid frontier of a month of calls."""

import json
import time
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
from pydantic import Field

from quantbot_assets.assets.truth import load_day_candles
from quantbot_assets.engine import default_grid, prepare_candles, search_frontier
from quantbot_assets.io_manager import (
    ArtifactFrame,
    RunDirectories,
    latest_materialization_metadata,
    mark_run_failed,
    read_artifact,
)
from quantbot_assets.partitions import PartitionWindow, month_partitions_def, parse_partition_key
from quantbot_assets.reports import markdown_table
from quantbot_assets.resources import BacktestParams, CandleSourceResource


def days_of(alerts: pd.DataFrame) -> list[str]:
    days = pd.to_datetime(alerts["alert_ts_ms"], unit="ms", utc=True).dt.strftime("%Y-%m-%d")
    return sorted(days.unique())


class FrontierConfig(dg.Config):
    objective: str = Field(default="median_return_bps", description="Column to maximise")
    min_trades: int = Field(default=20, description="Constraint: trades_count >= min_trades")
    max_stop_out_rate: float = Field(default=0.8, description="Constraint: stop_out_rate <= this")
    grid_json: str | None = Field(
        default=None,
        description='Policy grid as JSON {"policy_id": {policy}, ...}; default: the engine grid',
    )


def month_alerts(
    context: dg.AssetExecutionContext, window: PartitionWindow
) -> tuple[pd.DataFrame, list[str]]:
    """The month's materialized `alerts` days, and the days that have none yet."""
    frames, missing = [], []
    day = window.start
    while day < window.end:
        key = day.date().isoformat()
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("alerts"), asset_partitions=[key]), limit=1
        ).records
        if records:
            metadata = latest_materialization_metadata(context.instance, dg.AssetKey("alerts"), key)
            frames.append(read_artifact(Path(str(metadata["path"])), "alerts"))
        else:
            missing.append(key)
        day += timedelta(days=1)
    if not frames:
        raise dg.Failure(
            f"no day of {window.key} has materialized alerts: run path-only backtests first"
        )
    return pd.concat(frames, ignore_index=True), missing


@dg.asset(
    partitions_def=month_partitions_def,
    group_name="optimization",
    io_manager_key="run_dir_io_manager",
    hooks={mark_run_failed},
    deps=[dg.AssetDep("alerts", partition_mapping=dg.TimeWindowPartitionMapping())],
    kinds={"parquet"},
)
def frontier(
    context: dg.AssetExecutionContext,
    config: FrontierConfig,
    candle_source: CandleSourceResource,
    run_dirs: RunDirectories,
    params: BacktestParams,
) -> dg.Output[ArtifactFrame]:
    """Policy grid over a month of calls, overall and per caller: scores, constraints, Pareto, rank."""
    run_dirs.begin(context)
    window = parse_partition_key(context.partition_key)
    alerts, missing_days = month_alerts(context, window)
    if missing_days:
        context.log.warning(
            f"frontier {window.key}: no alerts yet for {len(missing_days)} days: {missing_days}"
        )
    run_dirs.mark_running(context)
    days = days_of(alerts)
    grid = json.loads(config.grid_json) if config.grid_json else default_grid()
    t0 = time.perf_counter()
    candles = load_day_candles(candle_source, alerts, params)
    t1 = time.perf_counter()
    prepared, _issues = prepare_candles(candles, interval=params.interval)
    rows = search_frontier(
        alerts,
        prepared,
        grid,
        objective=config.objective,
        min_trades=config.min_trades,
        max_stop_out_rate=config.max_stop_out_rate,
        run_id=context.run.run_id,
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
            parameters={
                **params.policy_params(),
                "objective": config.objective,
                "min_trades": config.min_trades,
                "max_stop_out_rate": config.max_stop_out_rate,
                "grid_size": len(grid),
            },
            dataset={
                "from": days[0],
                "to": days[-1],
                "interval": params.interval,
                "calls_count": len(alerts),
            },
            timing={
                "frontier.load_candles": round((t1 - t0) * 1000, 3),
                "frontier.search": round((t2 - t1) * 1000, 3),
            },
        ),
        metadata={
            "policies": len(grid),
            "days": len(days),
            "days_without_alerts": ", ".join(missing_days) or "none",
            "rows": len(rows),
            "best_overall": dg.MetadataValue.md(
                markdown_table(
                    best[
                        [
                            "rank",
                            "policy_id",
                            "trades_count",
                            "median_return_bps",
                            "avg_return_bps",
                            "stop_out_rate",
                            "pareto",
                        ]
                    ],
                    max_rows=15,
                )
            ),
        },
    )
