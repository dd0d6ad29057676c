"""The `truth` group: what the price did after each call, and the day's errors."""

import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq

from quantbot_assets.engine import compute_paths, prepare_candles
from quantbot_assets.engine.windows import candle_load_range
from quantbot_assets.error_rows import concat_errors, error_frame, excluded_call_errors
from quantbot_assets.io_manager import (
    ArtifactFrame,
    RunDirectories,
    latest_materialization_metadata,
    mark_run_failed,
)
from quantbot_assets.partitions import day_partitions_def, parse_partition_key
from quantbot_assets.reports import counts_table, histogram_markdown, markdown_table
from quantbot_assets.resources import BacktestParams, CandleSourceResource
from quantbot_assets.rundir import config_hash


def load_day_candles(
    candle_source: CandleSourceResource, calls: pd.DataFrame, params: BacktestParams
) -> pd.DataFrame:
    """Bars of the calls' series over `candle_load_range`: whole interval buckets from the
    first entry time to the end of the last window, plus the window-complete probe."""
    keys = calls[["chain", "mint"]].drop_duplicates()
    if calls.empty:
        return candle_source.load(keys, 0, 0)
    start, end = candle_load_range(
        int(calls["alert_ts_ms"].min()),
        int(calls["alert_ts_ms"].max()),
        int(params.entry_delay_ms),
        int(params.horizon_ms),
        params.interval,
    )
    return candle_source.load(keys, start, end)


@dg.asset(
    partitions_def=day_partitions_def,
    group_name="truth",
    io_manager_key="run_dir_io_manager",
    hooks={mark_run_failed},
    kinds={"parquet"},
)
def paths(
    context: dg.AssetExecutionContext,
    alerts: pd.DataFrame,
    candle_source: CandleSourceResource,
    run_dirs: RunDirectories,
    params: BacktestParams,
) -> dg.Output[ArtifactFrame]:
    """Truth layer: peak multiple, 2x/3x/4x times and drawdowns of each entered call."""
    run_dirs.begin(context)
    run_dirs.mark_running(context)
    window = parse_partition_key(context.partition_key)
    t0 = time.perf_counter()
    candles = load_day_candles(candle_source, alerts, params)
    t1 = time.perf_counter()
    prepared, issues = prepare_candles(candles, interval=params.interval)
    truth, excluded = compute_paths(
        alerts, prepared, run_id=context.run.run_id, **params.truth_params()
    )
    t2 = time.perf_counter()
    errors = concat_errors(
        [
            excluded_call_errors(excluded, alerts, run_id=context.run.run_id),
            error_frame(
                issues.assign(source=candle_source.path), run_id=context.run.run_id, stage="paths"
            ),
        ]
    )
    context.log.info(
        f"paths {window.key}: {len(candles)} bars loaded in {(t1 - t0) * 1000:.0f} ms; "
        f"{len(truth)} calls entered, {len(excluded)} excluded, {len(issues)} candle issues; "
        f"engine {(t2 - t1) * 1000:.0f} ms"
    )
    hit_rates = pd.DataFrame(
        {
            "metric": ["hit_2x", "hit_3x", "hit_4x"],
            "rate": [
                float(truth[c].mean()) if len(truth) else None
                for c in ("hit_2x", "hit_3x", "hit_4x")
            ],
        }
    )
    return dg.Output(
        ArtifactFrame(
            frame=truth,
            errors=errors,
            parameters=params.truth_params(),
            dataset={
                "from": window.first_day,
                "to": window.last_day,
                "interval": params.interval,
                "calls_count": len(alerts),
            },
            timing={
                "paths.load_candles": round((t1 - t0) * 1000, 3),
                "paths.compute": round((t2 - t1) * 1000, 3),
            },
        ),
        metadata={
            "calls": len(alerts),
            "entered": len(truth),
            "excluded": len(excluded),
            "candle_issues": len(issues),
            "bars_loaded": len(candles),
            "interval": params.interval,
            "truth_params_hash": config_hash(params.truth_params()),
            "hit_rates": dg.MetadataValue.md(markdown_table(hit_rates)),
            "peak_multiple_distribution": dg.MetadataValue.md(
                histogram_markdown(truth["peak_multiple"], unit="x")
            ),
            "exclusions": dg.MetadataValue.md(counts_table(excluded["reason"], "reason")),
        },
    )


def _read_errors_of(context: dg.AssetExecutionContext, asset: str) -> pd.DataFrame:
    metadata = latest_materialization_metadata(
        context.instance, dg.AssetKey(asset), str(context.partition_key)
    )
    path = metadata.get("errors_path")
    if path is None:
        return concat_errors([])
    return pq.read_table(Path(str(path))).to_pandas()


@dg.asset(
    partitions_def=day_partitions_def,
    group_name="truth",
    io_manager_key="run_dir_io_manager",
    hooks={mark_run_failed},
    deps=["alerts", "paths"],
    kinds={"parquet"},
)
def errors(context: dg.AssetExecutionContext, run_dirs: RunDirectories) -> dg.Output[ArtifactFrame]:
    """Every rejected call row, excluded call and candle problem of the day, with its reason."""
    run_dirs.begin(context)
    run_dirs.mark_running(context)
    rows = concat_errors([_read_errors_of(context, "alerts"), _read_errors_of(context, "paths")])
    by_reason = (
        rows.groupby(["stage", "reason"]).size().rename("rows").reset_index()
        if len(rows)
        else pd.DataFrame({"stage": [], "reason": [], "rows": []})
    )
    context.log.info(f"errors {context.partition_key}: {len(rows)} rows")
    return dg.Output(
        ArtifactFrame(frame=rows),
        metadata={"rows": len(rows), "by_reason": dg.MetadataValue.md(markdown_table(by_reason))},
    )
