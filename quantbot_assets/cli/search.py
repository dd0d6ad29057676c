"""`quantbot backtest optimize` and `walk-forward`: searches of a policy grid over months."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from quantbot_assets.cli.inputs import backtest_params, day_range, preflight, settings_from_args
from quantbot_assets.cli.render import print_outcomes
from quantbot_assets.cli.runtime import catalog_runs, runtime
from quantbot_assets.errors import UsageError


def read_grid(args: argparse.Namespace) -> str | None:
    """The --grid file's JSON text, every policy validated (None: the default grid)."""
    if not args.grid:
        return None
    try:
        grid_json = Path(args.grid).read_text()
        grid = json.loads(grid_json)
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--grid {args.grid}: cannot read: {exc}") from None
    except (json.JSONDecodeError, RecursionError) as exc:
        raise UsageError(f"--grid {args.grid}: not valid JSON: {exc}") from None
    if not isinstance(grid, dict) or not grid:
        raise UsageError(f"--grid {args.grid}: expected a JSON object {{policy_id: policy}}")
    from quantbot_assets.engine.policy import parse_policy

    for policy_id, policy in grid.items():
        try:
            parse_policy(policy)
        except ValueError as exc:
            raise UsageError(f"--grid {args.grid}: {policy_id}: {exc}") from None
    return grid_json


def _search_config(args: argparse.Namespace, grid_json: str | None) -> dict[str, Any]:
    """The grid and ranking options, as both searches' op config takes them."""
    return {
        "objective": args.objective,
        "min_trades": args.min_trades,
        "max_stop_out_rate": args.max_stop_out_rate,
        **({"grid_json": grid_json} if grid_json is not None else {}),
    }


def cmd_optimize(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    params = backtest_params(args)
    days = day_range(args, settings, months=True)
    months = sorted({d[:7] for d in days})
    grid_json = read_grid(args)
    preflight(settings, days)
    from quantbot_assets.launch import execute_range, params_run_config
    from quantbot_assets.search_tables import BEST_COLUMNS, best_overall

    defs, instance = runtime(settings)
    extra = {"ops": {"frontier": {"config": _search_config(args, grid_json)}}}
    outcome = execute_range(
        defs,
        "frontier_search",
        months[0],
        months[-1],
        instance=instance,
        run_config=params_run_config(params, extra),
        label="frontier",
    )
    catalogued = catalog_runs(settings, [outcome], args.json)
    if not args.json and outcome.success:
        import pandas as pd

        from quantbot_assets.reports import markdown_table

        rows = pd.read_parquet(outcome.run_dir / "results/frontier.parquet")
        best = best_overall(rows)
        for month, part in best.groupby("month"):
            print(f"\nFrontier {month} ({outcome.run_dir}):")
            print(markdown_table(part[BEST_COLUMNS], max_rows=10))
    return print_outcomes([outcome], args.json, {"catalogued": catalogued})


def cmd_walk_forward(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    params = backtest_params(args)
    days = day_range(args, settings, months=True)
    months = sorted({d[:7] for d in days})
    grid_json = read_grid(args)
    from quantbot_assets.engine.walk_forward import make_folds

    try:
        folds = make_folds(
            days[0],
            days[-1],
            train_days=args.train_days,
            test_days=args.test_days,
            step_days=args.step_days,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not folds:
        raise UsageError(
            f"--from {days[0]} --to {days[-1]}: {len(days)} days hold no fold of "
            f"--train-days {args.train_days} + --test-days {args.test_days}"
        )
    if grid_json is not None:
        grid_ids = list(json.loads(grid_json))
    else:
        from quantbot_assets.engine import default_grid

        grid_ids = list(default_grid())
    if args.baseline not in grid_ids:
        raise UsageError(
            f"--baseline {args.baseline!r} is not a policy of the grid (e.g. {', '.join(grid_ids[:3])})"
        )
    preflight(settings, days)
    from quantbot_assets.launch import execute_range, params_run_config
    from quantbot_assets.search_tables import verdict_tables

    defs, instance = runtime(settings)
    config = {
        **_search_config(args, None),
        "train_days": args.train_days,
        "test_days": args.test_days,
        "step_days": args.step_days,
        "baseline_policy_id": args.baseline,
        "min_oos_score": args.min_oos_score,
        "first_day": days[0],
        "last_day": days[-1],
        **({"grid_json": grid_json} if grid_json is not None else {}),
    }
    extra = {"ops": {"walk_forward": {"config": config}}}
    outcome = execute_range(
        defs,
        "walk_forward_search",
        months[0],
        months[-1],
        instance=instance,
        run_config=params_run_config(params, extra),
        label="walk-forward",
    )
    catalogued = catalog_runs(settings, [outcome], args.json)
    pooled: list[dict[str, Any]] = []
    if outcome.success:
        import pandas as pd

        rows = pd.read_parquet(outcome.run_dir / "results/walk_forward.parquet")
        held, not_held = verdict_tables(rows)
        pooled_rows = rows[rows["kind"] == "pooled"].drop(columns=["policy_id", "policy_params"])
        pooled = [
            {str(k): v for k, v in row.items()} for row in pooled_rows.to_dict(orient="records")
        ]
        if not args.json:
            from quantbot_assets.reports import markdown_table

            print(
                f"\nWalk-forward {days[0]} .. {days[-1]}: {len(folds)} folds "
                f"(train {args.train_days} d, test {args.test_days} d, step {args.step_days} d), "
                f"objective {args.objective}, baseline {args.baseline} ({outcome.run_dir})"
            )
            print(f"\nHolds up out of sample ({len(held)}):")
            print(markdown_table(held, max_rows=30))
            print(f"\nDoes not hold up ({len(not_held)}):")
            print(markdown_table(not_held, max_rows=30))
    return print_outcomes([outcome], args.json, {"pooled": pooled, "catalogued": catalogued})
