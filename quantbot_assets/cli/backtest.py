"""`quantbot backtest path-only` and `quantbot backtest policy`: backtests of a day range."""

from __future__ import annotations

import argparse
from typing import Any

from quantbot_assets.cli.inputs import backtest_params, day_range, preflight, settings_from_args
from quantbot_assets.cli.render import print_outcomes
from quantbot_assets.cli.runtime import catalog_runs, runtime
from quantbot_assets.errors import UsageError
from quantbot_assets.settings import Settings

MIN_CALLER_CALLS = 10

POLICY_TABLE_COLUMNS = [
    "policy_id",
    "trades_count",
    "median_return_bps",
    "median_optimistic_return_bps",
    "avg_return_bps",
    "avg_optimistic_return_bps",
    "ambiguous_trade_rate",
    "p90_return_bps",
    "win_rate",
    "stop_out_rate",
    "window_incomplete_trades",
]


def cmd_path_only(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    params = backtest_params(args)
    days = day_range(args, settings)
    preflight(settings, days)
    # Dagster and the engine load only once the inputs are known to be usable.
    from quantbot_assets.launch import (
        day_batches,
        execute_ranges,
        params_run_config,
        read_run_artifact,
    )
    from quantbot_assets.summaries import caller_table

    defs, instance = runtime(settings)
    outcomes = execute_ranges(
        defs,
        "path_only_backtest",
        day_batches(days),
        instance=instance,
        run_config=params_run_config(params),
        label="path-only",
    )
    paths = read_run_artifact(outcomes, "truth/paths.parquet")
    table = caller_table(paths, min_calls=MIN_CALLER_CALLS)
    left_out = caller_counts_below(paths, MIN_CALLER_CALLS)
    catalogued = catalog_runs(settings, outcomes, args.json)
    if not args.json:
        where = ", ".join(str(o.run_dir) for o in outcomes)
        print(
            f"\nPath-only backtest {days[0]} .. {days[-1]} ({params['interval']}): "
            f"{len(paths)} calls entered; run directory {where}"
        )
        from quantbot_assets.reports import markdown_table

        print(markdown_table(table, max_rows=15))
        if left_out:
            print(
                f"{len(left_out)} caller(s) with fewer than {MIN_CALLER_CALLS} entered calls"
                f" left out of the table ({sum(left_out.values())} calls); they are in"
                " truth/paths.parquet"
            )
    return print_outcomes(
        outcomes,
        args.json,
        {
            "calls_entered": len(paths),
            "callers": table.to_dict(orient="records"),
            "callers_left_out": left_out,
            "min_caller_calls": MIN_CALLER_CALLS,
            "catalogued": catalogued,
        },
    )


def caller_counts_below(paths: Any, min_calls: int) -> dict[str, int]:
    """Entered calls of each caller below `min_calls` (left out of the caller table)."""
    if len(paths) == 0 or "caller_name" not in paths:
        return {}
    counts = paths.groupby("caller_name").size()
    return {str(k): int(v) for k, v in counts[counts < min_calls].items()}


def policy_ids(args: argparse.Namespace, settings: Settings) -> list[str]:
    """The command's policy ids (registering a new one given with --policy)."""
    from quantbot_assets.policy_registry import add_policy, get_policies, load_registry

    ids = [p.strip() for given in args.policy_id or [] for p in given.split(",") if p.strip()]
    try:
        if args.all_policies:
            ids += [p for p in load_registry(settings.policy_registry) if p not in ids]
        if not ids:
            raise UsageError("give --policy-id ID (repeatable) or --all-policies")
        if args.policy:
            if len(ids) != 1:
                raise UsageError("--policy defines one policy: give exactly one --policy-id")
            added = add_policy(settings.policy_registry, ids[0], args.policy)
            if added and not args.json:
                print(f"registered policy {ids[0]} in {settings.policy_registry}")
        get_policies(settings.policy_registry, ids)
    except ValueError as exc:  # RegistryError, or a policy the engine refuses
        raise UsageError(str(exc)) from None
    return list(dict.fromkeys(ids))


def check_policy_json(text: str) -> None:
    """A --policy definition is validated before anything else (one line naming the field)."""
    from quantbot_assets.engine.policy import parse_policy

    try:
        parse_policy(text)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def cmd_policy(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    params = backtest_params(args)
    days = day_range(args, settings)
    if args.policy:
        check_policy_json(args.policy)
    ids = policy_ids(args, settings)
    preflight(settings, days)
    from quantbot_assets.defs.policies.partitions import ensure_policy_partition
    from quantbot_assets.engine.bootstrap import bootstrap_seed
    from quantbot_assets.launch import (
        day_batches,
        execute_ranges,
        params_run_config,
        policy_blocks,
        read_run_artifact,
    )
    from quantbot_assets.summaries import policy_summaries

    defs, instance = runtime(settings)
    for policy_id in ids:
        ensure_policy_partition(instance, policy_id)
    # One run per block of neighbouring policies and batch of days: it reuses
    # each day's truth layer computed from the same inputs and parameters, and
    # computes the days that have none.
    ranges = [
        (f"{first_day}|{first_policy}", f"{last_day}|{last_policy}")
        for first_policy, last_policy in policy_blocks(instance, ids)
        for first_day, last_day in day_batches(days)
    ]
    outcomes = execute_ranges(
        defs,
        "policy_backtest",
        ranges,
        instance=instance,
        run_config=params_run_config(params),
        label="policy",
    )
    trades = read_run_artifact(outcomes, "policy/trades.parquet")
    summaries = read_run_artifact(outcomes, "results/summary.parquet")
    catalogued = catalog_runs(settings, outcomes, args.json)
    import pandas as pd

    jobs = []
    for policy_id in ids:
        mine = summaries[summaries["policy_id"] == policy_id] if len(summaries) else summaries
        calls = int(mine["calls_processed"].sum()) if len(mine) else 0
        part = trades[trades["policy_id"] == policy_id] if len(trades) else trades
        if len(part) == 0 and not any(o.success for o in outcomes):
            continue  # no run of this command succeeded: nothing to summarise
        # intervals seeded from the command's content (parameters, policy, days), not a run id
        seed = bootstrap_seed("policy_command", params, policy_id, days[0], days[-1])
        jobs.append((policy_id, part, calls, seed))
    rows = policy_summaries(jobs)
    named = ids[0] if len(ids) == 1 else ids
    if not rows:
        # Every run failed: print each run's cause (no summary) and exit non-zero.
        return print_outcomes(
            outcomes, args.json, {"policy_id": named, "summary": [], "catalogued": catalogued}
        )
    table = pd.concat(rows, ignore_index=True)
    if not args.json:
        from quantbot_assets.reports import markdown_table, transpose_row

        where = ", ".join(str(o.run_dir) for o in outcomes)
        print(
            f"\nPolicy {', '.join(ids)} {days[0]} .. {days[-1]} ({params['interval']}): "
            f"run directory {where}"
        )
        if len(ids) == 1:
            print(markdown_table(transpose_row(table.drop(columns="policy_id"))))
        else:
            print(markdown_table(table[POLICY_TABLE_COLUMNS]))
    return print_outcomes(
        outcomes,
        args.json,
        {
            "policy_id": named,
            "summary": table.to_dict(orient="records"),
            "catalogued": catalogued,
        },
    )
