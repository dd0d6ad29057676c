"""The `inputs` group: calls of one day from the calls source."""

import time

import dagster as dg

from quantbot_assets.error_rows import error_frame
from quantbot_assets.io_manager import ArtifactFrame, RunDirectories, mark_run_failed
from quantbot_assets.partitions import day_partitions_def, parse_partition_key
from quantbot_assets.reports import markdown_table
from quantbot_assets.resources import BacktestParams, CallsSourceResource


@dg.asset(
    partitions_def=day_partitions_def,
    group_name="inputs",
    io_manager_key="run_dir_io_manager",
    hooks={mark_run_failed},
    kinds={"parquet"},
)
def alerts(
    context: dg.AssetExecutionContext,
    calls_source: CallsSourceResource,
    run_dirs: RunDirectories,
    params: BacktestParams,
) -> dg.Output[ArtifactFrame]:
    """Calls posted on one UTC day, validated; rejected rows go to errors."""
    run_dirs.begin(context)
    window = parse_partition_key(context.partition_key)
    started = time.perf_counter()
    loaded = calls_source.load(window.start_ms, window.end_ms)
    load_ms = (time.perf_counter() - started) * 1000
    run_dirs.mark_running(context)
    calls = loaded.calls
    rejects = error_frame(loaded.rejects, run_id=context.run.run_id, stage="alerts")
    context.log.info(
        f"alerts {window.key}: {len(calls)} calls loaded, {len(rejects)} rejected "
        f"from {calls_source.path} in {load_ms:.0f} ms"
    )
    per_caller = (
        calls.groupby("caller_name")
        .size()
        .sort_values(ascending=False)
        .rename("calls")
        .reset_index()
    )
    return dg.Output(
        ArtifactFrame(
            frame=calls,
            errors=rejects,
            parameters=params.all_params(),
            dataset={
                "from": window.first_day,
                "to": window.last_day,
                "interval": params.interval,
                "calls_count": len(calls),
            },
            timing={"alerts.load": round(load_ms, 3)},
        ),
        metadata={
            "calls": len(calls),
            "rejected": len(rejects),
            "callers": int(calls["caller_name"].nunique()),
            "source": calls_source.path,
            "calls_per_caller": dg.MetadataValue.md(markdown_table(per_caller, max_rows=15)),
        },
    )
