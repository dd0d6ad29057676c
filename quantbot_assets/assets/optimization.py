"""The `optimization` group: the policy-grid frontier of a month of calls."""

import json
import time
from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd
from pydantic import Field

from quantbot_assets.assets.truth import TruthGroup, ensure_truth, groups_fingerprint
from quantbot_assets.engine import PreparedCandles, default_grid, search_frontier
from quantbot_assets.engine.features import merge_prepared
from quantbot_assets.io_manager import (
    ArtifactFrame,
    RunDirectories,
    mark_run_failed,
    run_partition_keys,
)
from quantbot_assets.params import params_hash
from quantbot_assets.partitions import month_partitions_def
from quantbot_assets.reports import markdown_table
from quantbot_assets.resources import BacktestParams, CallsSourceResource, CandleSourceResource


class FrontierConfig(dg.Config):
    objective: str = Field(default="median_return_bps", description="Column to maximise")
    min_trades: int = Field(default=20, description="Constraint: trades_count >= min_trades")
    max_stop_out_rate: float = Field(default=0.8, description="Constraint: stop_out_rate <= this")
    grid_json: str | None = Field(
        default=None,
        description='Policy grid as JSON {"policy_id": {policy}, ...}; default: the engine grid',
    )


def month_days(month: str) -> list[str]:
    """Every day of a YYYY-MM month."""
    start = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
    end = (start + timedelta(days=32)).replace(day=1)
    return [(start + timedelta(days=i)).date().isoformat() for i in range((end - start).days)]


def merged_candles(groups: list[TruthGroup]) -> PreparedCandles:
    """One set of prepared candles for calls whose windows were prepared in several runs."""
    if len(groups) == 1:
        return groups[0].candles()
    # The same series prepared by two runs holds the same bars: merge_prepared keeps them once.
    return merge_prepared([g.candles() for g in groups])


def merged_fine(groups: list[TruthGroup]) -> PreparedCandles | None:
    """The groups' 1m bars for drill-down (None when a group has none)."""
    fine = [g.fine_candles() for g in groups]
    if any(f is None for f in fine):
        return None
    return fine[0] if len(fine) == 1 else merge_prepared([f for f in fine if f is not None])


BEST_COLUMNS = [
    "rank",
    "policy_id",
    "trades_count",
    "median_return_bps",
    "median_return_lo_bps",
    "median_return_hi_bps",
    "avg_return_bps",
    "win_rate_lo",
    "win_rate_hi",
    "stop_out_rate",
    "pareto",
]


def best_overall(rows: pd.DataFrame) -> pd.DataFrame:
    """The frontier's ranked policies for all callers together, best first."""
    best = rows[(rows["caller_name"] == "__all__") & rows["meets_constraints"]]
    return best.sort_values(["month", "rank"] if "month" in best else "rank")


@dg.asset(
    partitions_def=month_partitions_def,
    group_name="optimization",
    io_manager_key="run_dir_io_manager",
    hooks={mark_run_failed},
    deps=[
        dg.AssetDep(
            "alerts",
            partition_mapping=dg.TimeWindowPartitionMapping(
                allow_nonexistent_upstream_partitions=True
            ),
        )
    ],
    backfill_policy=dg.BackfillPolicy.single_run(),
    kinds={"parquet"},
)
def frontier(
    context: dg.AssetExecutionContext,
    config: FrontierConfig,
    calls_source: CallsSourceResource,
    candle_source: CandleSourceResource,
    run_dirs: RunDirectories,
    params: BacktestParams,
) -> dg.Output[ArtifactFrame]:
    """Policy grid over a month of calls, overall and per caller: scores, constraints, Pareto, rank."""
    run_dir = run_dirs.begin(context)
    months = run_partition_keys(context)
    grid = json.loads(config.grid_json) if config.grid_json else default_grid()
    run_dirs.mark_running(context)
    frames = []
    all_groups: list[TruthGroup] = []
    calls_count = 0
    t0 = time.perf_counter()
    for month in months:
        groups = ensure_truth(
            context,
            month_days(month),
            calls_source=calls_source,
            candle_source=candle_source,
            params=params,
            run_dirs=run_dirs,
            run_dir=run_dir,
        )
        all_groups += groups
        calls = pd.concat([g.calls for g in groups], ignore_index=True)
        if calls.empty:
            raise dg.Failure(f"frontier {month}: the calls source has no calls in this month")
        calls_count += len(calls)
        rows = search_frontier(
            calls,
            merged_candles(groups),
            grid,
            objective=config.objective,
            min_trades=config.min_trades,
            max_stop_out_rate=config.max_stop_out_rate,
            run_id=context.run.run_id,
            fine=merged_fine(groups) if params.interval != "1m" else None,
            # intervals seeded from content: the parameter set and the month, never the run id
            seed_key=f"{params_hash('frontier', params.all_params())}|{month}",
            **params.policy_params(),
        )
        frames.append(rows.assign(month=month))
        context.log.info(f"frontier {month}: {len(grid)} policies x {len(calls)} calls")
    rows = pd.concat(frames, ignore_index=True)
    t1 = time.perf_counter()
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
                "from": month_days(months[0])[0],
                "to": month_days(months[-1])[-1],
                "interval": params.interval,
                "calls_count": calls_count,
            },
            timing={"frontier.search": round((t1 - t0) * 1000, 3)},
            params_hash=params_hash("frontier", params.all_params()),
            data=groups_fingerprint(all_groups, params).manifest_fields(),
        ),
        metadata={
            "policies": len(grid),
            "months": ", ".join(months),
            "rows": len(rows),
            "best_overall": dg.MetadataValue.md(
                markdown_table(best_overall(rows)[BEST_COLUMNS], max_rows=15)
            ),
        },
    )
