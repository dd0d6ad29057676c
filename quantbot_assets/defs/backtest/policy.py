"""The policy layer: exit policies replayed on each entered call (`trades`), and `summary`.

One step replays every (day, policy) partition of its run. The candles come
from the prepared windows of a truth layer with the same inputs (reused, or
computed in this run when there is none), never from a second scan.
"""

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from quantbot_assets.defs.backtest.artifact_assets import artifact_multi_asset
from quantbot_assets.defs.backtest.lookahead import (
    lookahead_check_result,
    lookahead_spec,
    probe_calls,
    raise_if_failed,
)
from quantbot_assets.defs.backtest.partitions import (
    DAY_OF_DAY_POLICY,
    day_and_policy,
    day_backfill_policy,
    day_policy_partitions_def,
)
from quantbot_assets.defs.backtest.truth import ensure_truth, groups_fingerprint
from quantbot_assets.engine import Policy, simulate_policy
from quantbot_assets.engine.bootstrap import bootstrap_seed
from quantbot_assets.engine.summary import summary_frame, summary_row
from quantbot_assets.engine.threads import split_map
from quantbot_assets.params import params_hash
from quantbot_assets.pictures import import_in_background, return_distribution
from quantbot_assets.policy_registry import get_policies, plain_policy, policy_json
from quantbot_assets.reports import counts_table, histogram_markdown, markdown_table
from quantbot_assets.resources import (
    BacktestParams,
    CallsSourceResource,
    CandleSourceResource,
    PolicyRegistryResource,
)
from quantbot_assets.run_directories import RunDirectories
from quantbot_assets.run_directory import ArtifactFrame
from quantbot_assets.schemas import TRADES_ARTIFACT
from quantbot_assets.truth_identity import call_days


def day_policy_keys(context: dg.AssetExecutionContext) -> tuple[list[str], list[str]]:
    """The days and policy ids of the run's (day x policy) rectangle."""
    keys = [day_and_policy(key) for key in context.partition_keys]
    return sorted({day for day, _ in keys}), sorted({policy for _, policy in keys})


def replay(
    groups: list[Any], policies: dict[str, Policy], params: BacktestParams, run_id: str
) -> pd.DataFrame:
    """Trades of every policy on every group's calls, each row with its call's day."""
    frames = []
    drilldown: dict[str, int] = {}
    for group in groups:
        if group.calls.empty:
            continue
        prepared = group.candles()
        fine = group.fine_candles() if params.interval != "1m" else None
        day_of = pd.Series(
            call_days(group.calls["alert_ts_ms"]).to_numpy(), index=group.calls["call_id"]
        )
        for policy_id, policy in policies.items():
            trades = simulate_policy(
                group.calls,
                prepared,
                policy,
                policy_id=policy_id,
                run_id=run_id,
                fine=fine,
                **params.policy_params(),
            )
            for name, count in trades.attrs.get("drilldown", {}).items():
                drilldown[name] = drilldown.get(name, 0) + int(count)
            trades["day"] = day_of.reindex(trades["call_id"]).to_numpy()
            frames.append(trades)
    out = (
        pd.concat(frames, ignore_index=True)
        if frames
        else TRADES_ARTIFACT.empty_table().to_pandas()
    )
    out.attrs["drilldown"] = drilldown
    return out


def summaries(
    trades: pd.DataFrame,
    calls_per_day: pd.Series,
    days: list[str],
    policies: list[str],
    run_id: str,
    params_key: str = "",
) -> pd.DataFrame:
    """One summary row per (day, policy): SEMANTICS summary of that partition's trades.

    The bootstrap of each row is seeded from its parameter set, policy and day (not the run
    id), so a re-run of the same configuration on the same data writes the same intervals."""
    grouped = dict(tuple(trades.groupby(["day", "policy_id"], sort=False)))
    empty = trades.iloc[0:0]
    cells = [(day, policy_id) for day in days for policy_id in policies]

    def row(day: str, policy_id: str) -> dict[str, Any]:
        part = grouped.get((day, policy_id), empty)
        calls = int(calls_per_day.get(day, 0))
        summary = summary_row(
            part,
            calls_processed=calls,
            calls_excluded=calls - len(part),
            seed=bootstrap_seed("summary", params_key, policy_id, day),
        )
        return {**summary, "run_id": run_id, "policy_id": policy_id, "day": day}

    # The bootstraps (numpy's generator, a compiled kernel) release the GIL: on the cores.
    chunks = split_map(lambda a, b: [row(*cell) for cell in cells[a:b]], len(cells), 16)
    rows = [r for chunk in chunks for r in chunk]
    return summary_frame(rows, extra=["run_id", "policy_id", "day"])


@artifact_multi_asset(
    run_type="policy",
    layer="policy",
    outs={
        "trades": (
            "policy",
            "One trade per entered call: the policy's fills, exit reason, return, MAE "
            "and tail capture.",
        ),
        "summary": (
            "policy",
            "Return distribution, win rate, profit factor, stop-outs and tail capture "
            "of one policy on one day.",
        ),
    },
    partitions_def=day_policy_partitions_def,
    backfill_policy=day_backfill_policy,
    deps=[
        dg.AssetDep("alerts", partition_mapping=DAY_OF_DAY_POLICY),
        dg.AssetDep("paths", partition_mapping=DAY_OF_DAY_POLICY),
    ],
    check_specs=[lookahead_spec("trades")],
)
def policy_layer(
    context: dg.AssetExecutionContext,
    calls_source: CallsSourceResource,
    candle_source: CandleSourceResource,
    policy_registry: PolicyRegistryResource,
    run_dirs: RunDirectories,
    params: BacktestParams,
) -> Iterator[dg.Output[ArtifactFrame] | dg.AssetCheckResult]:
    """Trades and summaries of every (day, policy) of the run, from prepared candles."""
    days, policy_ids = day_policy_keys(context)
    import_in_background()  # the summary's chart, at the end
    registry = Path(policy_registry.path)
    policies = get_policies(registry, policy_ids)  # before any work
    t0 = time.perf_counter()
    groups = ensure_truth(
        context,
        days,
        calls_source=calls_source,
        candle_source=candle_source,
        params=params,
        run_dir=run_dirs.open(context),
    )
    t1 = time.perf_counter()
    run_id = context.run.run_id
    trades = replay(groups, policies, params, run_id)
    t2 = time.perf_counter()
    check = _lookahead(groups, policies, params)
    yield check
    raise_if_failed(check)  # blocking: nothing of this run's policy layer materializes
    t3 = time.perf_counter()
    calls = pd.concat([g.calls for g in groups], ignore_index=True)
    calls_per_day = call_days(calls["alert_ts_ms"]).value_counts()
    phash = params_hash("trades", params.all_params())
    data = groups_fingerprint(groups, params).manifest_fields()
    summary = summaries(trades, calls_per_day, days, policy_ids, run_id, phash)
    truth_run = {day: g.truth_run_id for g in groups for day in g.days}
    drilldown = trades.attrs.get("drilldown", {})
    context.log.info(
        f"policies {policy_ids} on {days[0]} .. {days[-1]}: {len(trades)} trades of "
        f"{len(calls)} calls; truth {(t1 - t0) * 1000:.0f} ms, replay {(t2 - t1) * 1000:.0f} ms; "
        f"ambiguous exit bars {drilldown.get('ambiguous_bars', 0)}, resolved from 1m bars "
        f"{drilldown.get('resolved_bars', 0)} ({drilldown.get('fine_bars_read', 0)} 1m bars read)"
    )
    parameters: dict[str, Any] = {**params.policy_params()}
    if len(policies) == 1:
        [(policy_id, policy)] = policies.items()
        parameters.update(policy_id=policy_id, policy=plain_policy(policy))
    else:
        parameters["policies"] = {pid: plain_policy(p) for pid, p in policies.items()}
    dataset = {
        "from": days[0],
        "to": days[-1],
        "interval": params.interval,
        "calls_count": len(calls),
    }
    partition_metadata = {
        f"{row['day']}|{row['policy_id']}": {
            "policy_id": row["policy_id"],
            "trades": int(row["trades_count"]),
            "median_return_bps": _rounded(row["median_return_bps"]),
            "median_optimistic_return_bps": _rounded(row["median_optimistic_return_bps"]),
            "ambiguous_trade_rate": _rounded(row["ambiguous_trade_rate"]),
            "win_rate": _rounded(row["win_rate"]),
            "median_return_90ci_bps": _interval(
                row["median_return_lo_bps"], row["median_return_hi_bps"]
            ),
            "win_rate_90ci": _interval(row["win_rate_lo"], row["win_rate_hi"]),
            "truth_run_id": truth_run.get(str(row["day"]), ""),
        }
        for row in summary.to_dict(orient="records")
    }
    timing = {
        "policy.truth": round((t1 - t0) * 1000, 3),
        "policy.replay": round((t2 - t1) * 1000, 3),
        "policy.lookahead_check": round((t3 - t2) * 1000, 3),
    }
    chart = return_distribution(
        trades["realized_return_bps"],
        trades["policy_id"],
        title=f"realized returns {days[0]} .. {days[-1]} ({len(trades)} trades)",
    )
    yield from (
        dg.Output(
            ArtifactFrame(
                frame=trades,
                parameters=parameters,
                dataset=dataset,
                timing=timing,
                params_hash=phash,
                partition_metadata=partition_metadata,
                data=data,
            ),
            metadata={
                "policies": ", ".join(f"{pid} = {policy_json(p)}" for pid, p in policies.items()),
                "trades": len(trades),
                "truth_runs": ", ".join(sorted(set(truth_run.values()))),
                "ambiguous_exit_bars": int(drilldown.get("ambiguous_bars", 0)),
                "resolved_from_1m_bars": int(drilldown.get("resolved_bars", 0)),
                "ambiguous_trades_left": int(trades["ambiguous"].fillna(False).sum()),
                "return_distribution": dg.MetadataValue.md(
                    histogram_markdown(trades["realized_return_bps"])
                ),
                "exit_reasons": dg.MetadataValue.md(
                    counts_table(trades["exit_reason"], "exit_reason")
                ),
            },
            output_name="trades",
        ),
        dg.Output(
            ArtifactFrame(
                frame=summary,
                params_hash=phash,
                partition_metadata=partition_metadata,
                timing={"summary.picture": chart.ms},
                data=data,
            ),
            metadata={
                "return_distribution_chart": dg.MetadataValue.md(chart.markdown),
                "summary": dg.MetadataValue.md(
                    markdown_table(
                        summary[
                            [
                                "day",
                                "policy_id",
                                "trades_count",
                                "median_return_bps",
                                "median_return_lo_bps",
                                "median_return_hi_bps",
                                "median_optimistic_return_bps",
                                "avg_return_bps",
                                "avg_optimistic_return_bps",
                                "ambiguous_trade_rate",
                                "win_rate",
                                "win_rate_lo",
                                "win_rate_hi",
                                "stop_out_rate",
                                "window_incomplete_trades",
                            ]
                        ],
                        max_rows=40,
                    )
                ),
                "return_distribution": dg.MetadataValue.md(
                    histogram_markdown(trades["realized_return_bps"])
                ),
                "exit_reasons": dg.MetadataValue.md(
                    counts_table(trades["exit_reason"], "exit_reason")
                ),
            },
            output_name="summary",
        ),
    )


def _lookahead(
    groups: list[Any], policies: dict[str, Policy], params: BacktestParams
) -> dg.AssetCheckResult:
    """The blocking lookahead check of the run's trades (see assets/lookahead.py)."""
    found, sampled = [], 0
    days = sum(len(g.days) for g in groups) or 1
    for group in groups:
        fine = group.fine_candles() if params.interval != "1m" else None
        for policy_id, policy in policies.items():
            cells, n = probe_calls(
                group.calls,
                group.candles(),
                partitions=len(group.days),
                params=params.all_params(),
                policy_id=policy_id,
                policy=policy,
                fine=fine,
                share=len(group.days) / days / len(policies),
            )
            found.append(cells)
            sampled += n
    return lookahead_check_result("trades", found, sampled)


def _rounded(value: Any) -> float | None:
    # rounded for display; the file keeps every digit
    return None if pd.isna(value) else round(float(value), 4)


def _interval(lo: Any, hi: Any) -> str:
    """`[lo, hi]` for the UI, empty when undefined (fewer than 2 trades)."""
    if pd.isna(lo) or pd.isna(hi):
        return ""
    return f"[{float(lo):.4g}, {float(hi):.4g}]"
