"""The `policy` group: exit policies replayed on each entered call, and their summary."""

import time
from pathlib import Path

import dagster as dg
import pandas as pd

from quantbot_assets.assets.truth import load_day_candles
from quantbot_assets.engine import prepare_candles, simulate_policy, summarize
from quantbot_assets.io_manager import (
    ArtifactFrame,
    RunDirectories,
    latest_materialization_metadata,
    mark_run_failed,
)
from quantbot_assets.partitions import day_policy_partitions_def, parse_partition_key
from quantbot_assets.policy_registry import get_policy, plain_policy, policy_json
from quantbot_assets.reports import counts_table, histogram_markdown, markdown_table, transpose_row
from quantbot_assets.resources import BacktestParams, CandleSourceResource, PolicyRegistryResource
from quantbot_assets.rundir import config_hash

DAY_OF_DAY_POLICY = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="day")


def _check_truth_params(
    context: dg.AssetExecutionContext, params: BacktestParams, day: str
) -> None:
    """Refuse to mix a truth layer computed with other parameters into this run."""
    metadata = latest_materialization_metadata(context.instance, dg.AssetKey("paths"), day)
    if metadata.get("truth_params_hash") != config_hash(params.truth_params()):
        raise dg.Failure(
            f"paths {day} was computed with other truth parameters "
            f"(interval {metadata.get('interval')}) than this run ({params.truth_params()}): "
            "materialize paths with these parameters first, or select it in the same run"
        )


@dg.asset(
    partitions_def=day_policy_partitions_def,
    group_name="policy",
    io_manager_key="run_dir_io_manager",
    hooks={mark_run_failed},
    ins={
        "alerts": dg.AssetIn(partition_mapping=DAY_OF_DAY_POLICY),
        "paths": dg.AssetIn(partition_mapping=DAY_OF_DAY_POLICY),
    },
    kinds={"parquet"},
)
def trades(
    context: dg.AssetExecutionContext,
    alerts: pd.DataFrame,
    paths: pd.DataFrame,
    candle_source: CandleSourceResource,
    policy_registry: PolicyRegistryResource,
    run_dirs: RunDirectories,
    params: BacktestParams,
) -> dg.Output[ArtifactFrame]:
    """One trade per entered call: the policy's fills, exit reason, return, MAE and tail capture."""
    run_dirs.begin(context)
    window = parse_partition_key(context.partition_key)
    day = window.start.date().isoformat()
    assert window.policy_id is not None
    policy = get_policy(Path(policy_registry.path), window.policy_id)
    _check_truth_params(context, params, day)
    run_dirs.mark_running(context)
    t0 = time.perf_counter()
    candles = load_day_candles(candle_source, alerts, params)
    t1 = time.perf_counter()
    prepared, _issues = prepare_candles(candles, interval=params.interval)  # reported by paths
    result = simulate_policy(
        alerts,
        prepared,
        policy,
        policy_id=window.policy_id,
        run_id=context.run.run_id,
        **params.policy_params(),
    )
    t2 = time.perf_counter()
    if set(result["call_id"]) != set(paths["call_id"]):
        raise dg.Failure(
            f"trades {window.key}: {len(result)} trades but {len(paths)} entered calls in paths"
        )
    context.log.info(
        f"trades {window.key}: {len(result)} trades of {len(alerts)} calls; candles "
        f"{(t1 - t0) * 1000:.0f} ms, replay {(t2 - t1) * 1000:.0f} ms"
    )
    return dg.Output(
        ArtifactFrame(
            frame=result,
            parameters={
                **params.policy_params(),
                "policy_id": window.policy_id,
                "policy": plain_policy(policy),
            },
            dataset={
                "from": day,
                "to": window.last_day,
                "interval": params.interval,
                "calls_count": len(alerts),
            },
            timing={
                "trades.load_candles": round((t1 - t0) * 1000, 3),
                "trades.replay": round((t2 - t1) * 1000, 3),
            },
        ),
        metadata={
            "policy_id": window.policy_id,
            "policy": policy_json(policy),
            "trades": len(result),
            "return_distribution": dg.MetadataValue.md(
                histogram_markdown(result["realized_return_bps"])
            ),
            "exit_reasons": dg.MetadataValue.md(counts_table(result["exit_reason"], "exit_reason")),
        },
    )


@dg.asset(
    partitions_def=day_policy_partitions_def,
    group_name="policy",
    io_manager_key="run_dir_io_manager",
    hooks={mark_run_failed},
    ins={"alerts": dg.AssetIn(partition_mapping=DAY_OF_DAY_POLICY)},
    kinds={"parquet"},
)
def summary(
    context: dg.AssetExecutionContext,
    trades: pd.DataFrame,
    alerts: pd.DataFrame,
    run_dirs: RunDirectories,
) -> dg.Output[ArtifactFrame]:
    """Return distribution, win rate, profit factor, stop-outs and tail capture of one policy on one day."""
    run_dirs.begin(context)
    run_dirs.mark_running(context)
    window = parse_partition_key(context.partition_key)
    assert window.policy_id is not None
    metrics = summarize(
        trades, calls_processed=len(alerts), calls_excluded=len(alerts) - len(trades)
    )
    row = metrics.assign(
        run_id=context.run.run_id, policy_id=window.policy_id, day=window.start.date().isoformat()
    )
    return dg.Output(
        ArtifactFrame(frame=row),
        metadata={
            "policy_id": window.policy_id,
            "trades": int(metrics["trades_count"].iloc[0]),
            "median_return_bps": dg.MetadataValue.float(
                # rounded for display; the file keeps every digit
                round(float(metrics["median_return_bps"].fillna(float("nan")).iloc[0]), 4)
            ),
            "summary": dg.MetadataValue.md(markdown_table(transpose_row(metrics))),
            "return_distribution": dg.MetadataValue.md(
                histogram_markdown(trades["realized_return_bps"])
            ),
            "exit_reasons": dg.MetadataValue.md(counts_table(trades["exit_reason"], "exit_reason")),
        },
    )
