"""The `optimization` group: the policy-grid frontier of a month of calls, and its walk-forward
(chosen on past days, scored on the days after)."""

import json
import time
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field

from quantbot_assets.defs.backtest.artifact_assets import artifact_asset
from quantbot_assets.defs.backtest.partitions import month_days, month_partitions_def
from quantbot_assets.defs.backtest.truth import TruthGroup, ensure_truth, groups_fingerprint
from quantbot_assets.engine import PreparedCandles, default_grid, search_frontier
from quantbot_assets.engine.features import merge_prepared
from quantbot_assets.engine.walk_forward import make_folds
from quantbot_assets.engine.walk_forward import walk_forward as run_walk_forward
from quantbot_assets.params import params_hash
from quantbot_assets.pictures import frontier_scatter, in_vs_out_of_sample, total_ms
from quantbot_assets.reports import markdown_table
from quantbot_assets.resources import BacktestParams, CallsSourceResource, CandleSourceResource
from quantbot_assets.run_directories import RunDirectories
from quantbot_assets.run_directory import ArtifactFrame
from quantbot_assets.search_tables import BEST_COLUMNS, best_overall, verdict_tables


class FrontierConfig(dg.Config):
    objective: str = Field(default="median_return_bps", description="Column to maximise")
    min_trades: int = Field(default=20, description="Constraint: trades_count >= min_trades")
    max_stop_out_rate: float = Field(default=0.8, description="Constraint: stop_out_rate <= this")
    grid_json: str | None = Field(
        default=None,
        description='Policy grid as JSON {"policy_id": {policy}, ...}; default: the engine grid',
    )

    def grid(self) -> dict[str, Any]:
        """The policy grid searched: `grid_json`, or the engine's default grid."""
        return json.loads(self.grid_json) if self.grid_json else default_grid()

    def recorded(self, params: BacktestParams, grid: dict[str, Any]) -> dict[str, Any]:
        """What run.json records of the search: the run's policy parameters and this config."""
        return {
            **params.policy_params(),
            "objective": self.objective,
            "min_trades": self.min_trades,
            "max_stop_out_rate": self.max_stop_out_rate,
            "grid_size": len(grid),
        }


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


# Both searches (frontier, walk_forward): month partitions, one run for a range, the days'
# calls read upstream (a month whose days have no alerts yet is fine: the truth layer is
# computed in the run).
MONTH_SEARCH_ASSET: dict[str, Any] = {
    "run_type": "optimization",
    "partitions_def": month_partitions_def,
    "group_name": "optimization",
    "deps": [
        dg.AssetDep(
            "alerts",
            partition_mapping=dg.TimeWindowPartitionMapping(
                allow_nonexistent_upstream_partitions=True
            ),
        )
    ],
    "backfill_policy": dg.BackfillPolicy.single_run(),
}


@artifact_asset(**MONTH_SEARCH_ASSET)
def frontier(
    context: dg.AssetExecutionContext,
    config: FrontierConfig,
    calls_source: CallsSourceResource,
    candle_source: CandleSourceResource,
    run_dirs: RunDirectories,
    params: BacktestParams,
) -> dg.Output[ArtifactFrame]:
    """Policy grid over a month of calls, overall and per caller: scores, constraints, Pareto, rank."""
    run_dir = run_dirs.open(context)
    months = list(context.partition_keys)
    grid = config.grid()
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
    charts = {
        month: frontier_scatter(
            part, title=f"frontier {month}, all callers: {config.objective} vs stop-outs"
        )
        for month, part in rows.groupby("month")
    }
    return dg.Output(
        ArtifactFrame(
            frame=rows,
            parameters=config.recorded(params, grid),
            dataset={
                "from": month_days(months[0])[0],
                "to": month_days(months[-1])[-1],
                "interval": params.interval,
                "calls_count": calls_count,
            },
            timing={
                "frontier.search": round((t1 - t0) * 1000, 3),
                "frontier.picture": total_ms(list(charts.values())),
            },
            params_hash=params_hash("frontier", params.all_params()),
            data=groups_fingerprint(all_groups, params).manifest_fields(),
            partition_metadata={
                str(month): {"score_vs_stop_outs": dg.MetadataValue.md(chart.markdown)}
                for month, chart in charts.items()
            },
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


class WalkForwardConfig(FrontierConfig):
    train_days: int = Field(default=14, description="Days a fold chooses its policy on")
    test_days: int = Field(default=7, description="Days after them the choice is scored on")
    step_days: int = Field(default=7, description="Days from one fold's start to the next's")
    baseline_policy_id: str = Field(
        default="time_stop-hold1440m",
        description="A policy of the grid scored on every fold's test days for comparison",
    )
    min_oos_score: float = Field(
        default=0.0,
        description="A caller holds up when its pooled out-of-sample score is above this",
    )
    first_day: str | None = Field(
        default=None, description="First day of the folds (default: the run's first month)"
    )
    last_day: str | None = Field(
        default=None, description="Last day of the folds (default: the run's last month)"
    )


def _fold_range(config: WalkForwardConfig, months: list[str]) -> tuple[str, str]:
    days = [d for m in months for d in month_days(m)]
    first, last = config.first_day or days[0], config.last_day or days[-1]
    for name, day in (("first_day", first), ("last_day", last)):
        if day not in days:
            raise dg.Failure(f"walk_forward: {name} {day} is not a day of {', '.join(months)}")
    if first > last:
        raise dg.Failure(f"walk_forward: first_day {first} is after last_day {last}")
    return first, last


@artifact_asset(**MONTH_SEARCH_ASSET)
def walk_forward(
    context: dg.AssetExecutionContext,
    config: WalkForwardConfig,
    calls_source: CallsSourceResource,
    candle_source: CandleSourceResource,
    run_dirs: RunDirectories,
    params: BacktestParams,
) -> dg.Output[ArtifactFrame]:
    """Walk-forward frontier: each fold's best policy on train days, scored on the test days after."""
    months = list(context.partition_keys)
    first, last = _fold_range(config, months)
    folds = make_folds(
        first,
        last,
        train_days=config.train_days,
        test_days=config.test_days,
        step_days=config.step_days,
    )
    if not folds:
        raise dg.Failure(
            f"walk_forward {first} .. {last}: shorter than train_days + test_days "
            f"({config.train_days} + {config.test_days})"
        )
    grid = config.grid()
    if config.baseline_policy_id not in grid:
        raise dg.Failure(
            f"walk_forward: baseline_policy_id {config.baseline_policy_id!r} is not a policy "
            f"of the grid (e.g. {', '.join(list(grid)[:3])})"
        )
    days = [d for m in months for d in month_days(m) if first <= d <= last]
    groups = ensure_truth(
        context,
        days,
        calls_source=calls_source,
        candle_source=candle_source,
        params=params,
        run_dir=run_dirs.open(context),
    )
    calls = pd.concat([g.calls for g in groups], ignore_index=True)
    if calls.empty:
        raise dg.Failure(f"walk_forward {first} .. {last}: the calls source has no calls")
    t0 = time.perf_counter()
    try:
        rows = run_walk_forward(
            calls,
            merged_candles(groups),
            grid,
            first_day=first,
            last_day=last,
            train_days=config.train_days,
            test_days=config.test_days,
            step_days=config.step_days,
            baseline_policy_id=config.baseline_policy_id,
            objective=config.objective,
            min_trades=config.min_trades,
            max_stop_out_rate=config.max_stop_out_rate,
            min_oos_score=config.min_oos_score,
            run_id=context.run.run_id,
            fine=merged_fine(groups) if params.interval != "1m" else None,
            **params.policy_params(),
        )
    except ValueError as exc:
        raise dg.Failure(f"walk_forward: {exc}") from None
    t1 = time.perf_counter()
    last_month = folds[-1].test_from.isoformat()[:7]
    rows["month"] = rows["test_from"].str[:7].where(rows["kind"] == "fold", last_month)
    held, not_held = verdict_tables(rows)
    chart = in_vs_out_of_sample(
        rows[rows["kind"] == "pooled"],
        title=f"walk-forward {first} .. {last}: {config.objective} per caller",
    )
    context.log.info(
        f"walk_forward {first} .. {last}: {len(folds)} folds x {len(grid)} policies, "
        f"{len(held)} caller(s) hold up out of sample"
    )
    return dg.Output(
        ArtifactFrame(
            frame=rows,
            parameters={
                **config.recorded(params, grid),
                "train_days": config.train_days,
                "test_days": config.test_days,
                "step_days": config.step_days,
                "baseline_policy_id": config.baseline_policy_id,
                "min_oos_score": config.min_oos_score,
            },
            dataset={
                "from": first,
                "to": last,
                "interval": params.interval,
                "calls_count": len(calls),
            },
            timing={
                "walk_forward.search": round((t1 - t0) * 1000, 3),
                "walk_forward.picture": chart.ms,
            },
            params_hash=params_hash("walk_forward", params.all_params()),
        ),
        metadata={
            "folds": len(folds),
            "policies": len(grid),
            "range": f"{first} .. {last}",
            "objective": config.objective,
            "holds_up": dg.MetadataValue.md(markdown_table(held, max_rows=30)),
            "does_not_hold_up": dg.MetadataValue.md(markdown_table(not_held, max_rows=30)),
            "in_vs_out_of_sample": dg.MetadataValue.md(chart.markdown),
        },
    )
