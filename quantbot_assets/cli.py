"""The `quantbot` command: quick start, backtests, policies, catalog, dev server.

Errors a user can fix (bad dates, missing files, unknown fields, a calls or
candles file that cannot be used) print one line to stderr and exit with 2,
before any run starts. A run that fails prints its cause in one line and the
command exits with 1. Ctrl-C, SIGTERM and SIGHUP stop the whole command and
mark the current run failed (exit 130, 143, 129).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import re
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from quantbot_assets.catalog.commands import add_backtest_commands
from quantbot_assets.params import INTERVALS
from quantbot_assets.settings import Settings, SettingsError, ensure_dagster_home

DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$")
UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


class UsageError(Exception):
    """A mistake in the command line or its inputs: one line, exit code 2."""


def parse_duration_ms(text: str, option: str) -> int:
    match = DURATION.match(text.strip())
    if not match:
        raise UsageError(
            f"{option} {text!r}: use a number with a unit, e.g. 48h, 30m, 90s, 1d or 500ms"
        )
    return int(float(match.group(1)) * UNIT_MS[match.group(2) or "ms"])


def parse_day(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{option} {text!r} is not a date (YYYY-MM-DD)") from None


# --- settings from options -------------------------------------------------


def settings_from_args(args: argparse.Namespace) -> Settings:
    settings = Settings.from_env()
    changes: dict[str, Any] = {}
    calls = [
        (getattr(args, "calls_from_duckdb", None), ".duckdb"),
        (getattr(args, "calls_from_parquet", None), ".parquet"),
        (getattr(args, "calls_from_csv", None), ".csv"),
    ]
    given = [(p, kind) for p, kind in calls if p]
    if len(given) > 1:
        raise UsageError(
            "give only one of --calls-from-duckdb, --calls-from-parquet, --calls-from-csv"
        )
    if given:
        path = Path(given[0][0]).expanduser().resolve()
        if not path.exists() and path != settings.sample_calls_path:
            raise UsageError(f"calls file {path} does not exist")
        changes["calls_path"] = path
    if getattr(args, "calls_table", None):
        changes["calls_table"] = args.calls_table
    if getattr(args, "candles", None):
        path = Path(args.candles).expanduser().resolve()
        if not path.exists() and path != settings.sample_candles_path:
            raise UsageError(f"candles path {path} does not exist")
        changes["candles_path"] = path
    if getattr(args, "runs_dir", None):
        changes["runs_dir"] = Path(args.runs_dir).expanduser().resolve()
    return dataclasses.replace(settings, **changes)


def backtest_params(args: argparse.Namespace) -> dict[str, Any]:
    if args.interval not in INTERVALS:
        raise UsageError(f"--interval {args.interval!r}: use one of {', '.join(INTERVALS)}")
    params: dict[str, Any] = {"interval": args.interval}
    if args.horizon is not None:
        params["horizon_ms"] = parse_duration_ms(args.horizon, "--horizon")
        if params["horizon_ms"] <= 0:
            raise UsageError("--horizon must be positive")
    if args.entry_delay is not None:
        params["entry_delay_ms"] = parse_duration_ms(args.entry_delay, "--entry-delay")
    for name in ("fee_bps", "slippage_bps"):
        value = getattr(args, name, None)
        if value is not None:
            if not math.isfinite(value) or value < 0:
                raise UsageError(
                    f"--{name.replace('_', '-')} {value}: must be a finite number >= 0"
                )
            params[name] = value
    return params


# --- commands ------------------------------------------------------------------


def _runtime(settings: Settings) -> tuple[Any, Any]:
    """Definitions for `settings` and the project's Dagster instance.

    Runs of earlier commands whose process is gone (killed, terminal closed)
    are marked failed first, so they never hold a run slot.
    """
    ensure_dagster_home(settings)
    import dagster as dg

    from quantbot_assets.definitions import build_definitions
    from quantbot_assets.stale_runs import fail_stale_runs

    defs = build_definitions(settings)
    # Dagster creates (and migrates) its SQLite storage on first use; two commands
    # starting at once on a fresh instance would race on it.
    with _instance_lock():
        instance = dg.DagsterInstance.get()
        fail_stale_runs(
            instance,
            (defs.resources or {}).get("run_dirs"),
            log=lambda line: print(f"quantbot: {line}", file=sys.stderr),
        )
    return defs, instance


@contextlib.contextmanager
def _instance_lock() -> Iterator[None]:
    """An exclusive lock on `$DAGSTER_HOME/.quantbot-instance.lock` for the block."""
    import fcntl
    import os

    home = Path(os.environ["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    with (home / ".quantbot-instance.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _preflight(settings: Settings, days: list[str], quiet: bool = False) -> None:
    """The data checks made before any run (one-line errors, exit 2; see preflight.py)."""
    from quantbot_assets.preflight import PreflightError, check_sources

    try:
        notes = check_sources(settings, date.fromisoformat(days[0]), date.fromisoformat(days[-1]))
    except PreflightError as exc:
        raise UsageError(str(exc)) from None
    for note in notes:
        print(f"quantbot: note: {note}", file=sys.stderr)


def _catalog_runs(settings: Settings, outcomes: list[Any], as_json: bool) -> list[str]:
    """Register the command's finished run directories in the catalog now.

    The same writer lock and registration as `catalog-sync` and the catalog
    sensor (idempotent: the sensor later skips them). A busy or broken catalog
    never fails the backtest: it says so in one line.
    """
    from quantbot_assets.rundir import FAILED_MARKER, SUCCESS_MARKER

    run_dirs = [
        o.run_dir
        for o in outcomes
        if (o.run_dir / SUCCESS_MARKER).exists() or (o.run_dir / FAILED_MARKER).exists()
    ]
    if not run_dirs:
        return []
    try:
        from quantbot_assets.catalog.register import register_runs
        from quantbot_assets.catalog.writer import catalog_writer

        with catalog_writer(settings.catalog_path, lock_timeout_s=CATALOG_LOCK_WAIT_S) as conn:
            report = register_runs(conn, settings.runs_dir, run_dirs)
    except Exception as exc:  # the backtest itself succeeded: only say so
        from quantbot_assets.preflight import one_line

        print(
            f"quantbot: note: runs not catalogued yet ({one_line(str(exc), 200)}); "
            "the catalog sensor or `quantbot backtest catalog-sync` will",
            file=sys.stderr,
        )
        return []
    for rel, reason in report.rejected:
        print(f"quantbot: note: catalog rejected {rel}: {reason}", file=sys.stderr)
    if not as_json and (report.registered or report.skipped):
        print(f"catalogued {len(report.registered)} run(s) in {settings.catalog_path}")
    return list(report.registered)


CATALOG_LOCK_WAIT_S = 20.0


def _print_outcomes(outcomes: list[Any], as_json: bool, extra: dict[str, Any]) -> int:
    failed = [o for o in outcomes if not o.success]
    if as_json:
        print(
            json.dumps(
                {
                    **extra,
                    "runs": [
                        {
                            "partition": o.partition_key,
                            "run_id": o.run_id,
                            "success": o.success,
                            "run_dir": str(o.run_dir),
                            "error": o.error,
                        }
                        for o in outcomes
                    ],
                },
                indent=2,
                default=str,
            )
        )
    for o in failed:
        print(f"FAILED {o.partition_key}: {o.error} ({o.run_dir})", file=sys.stderr)
    return 1 if failed else 0


def _day_range(args: argparse.Namespace, settings: Settings, months: bool = False) -> list[str]:
    from quantbot_assets.preflight import (
        PreflightError,
        check_day_range,
        check_month_range,
        day_keys,
    )

    start, end = parse_day(args.from_, "--from"), parse_day(args.to, "--to")
    try:
        days = day_keys(start, end)
        (check_month_range if months else check_day_range)(start, end, settings.first_day)
    except (ValueError, PreflightError) as exc:
        raise UsageError(str(exc)) from None
    return days


def cmd_path_only(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    params = backtest_params(args)
    days = _day_range(args, settings)
    _preflight(settings, days)
    # Dagster and the engine load only once the inputs are known to be usable.
    from quantbot_assets.launch import (
        day_batches,
        execute_ranges,
        params_run_config,
        read_run_artifact,
    )
    from quantbot_assets.summaries import caller_table

    defs, instance = _runtime(settings)
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
    catalogued = _catalog_runs(settings, outcomes, args.json)
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
    return _print_outcomes(
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


MIN_CALLER_CALLS = 10


def caller_counts_below(paths: Any, min_calls: int) -> dict[str, int]:
    """Entered calls of each caller below `min_calls` (left out of the caller table)."""
    if len(paths) == 0 or "caller_name" not in paths:
        return {}
    counts = paths.groupby("caller_name").size()
    return {str(k): int(v) for k, v in counts[counts < min_calls].items()}


def _policy_ids(args: argparse.Namespace, settings: Settings) -> list[str]:
    """The command's policy ids (registering a new one given with --policy)."""
    from quantbot_assets.policy_registry import RegistryError, add_policy, get_policy, load_registry

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
        for policy_id in ids:
            get_policy(settings.policy_registry, policy_id)
    except (RegistryError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    return list(dict.fromkeys(ids))


def cmd_policy(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    params = backtest_params(args)
    days = _day_range(args, settings)
    if args.policy:
        _check_policy_json(args.policy)
    policy_ids = _policy_ids(args, settings)
    _preflight(settings, days)
    from quantbot_assets.engine.bootstrap import bootstrap_seed
    from quantbot_assets.launch import (
        day_batches,
        ensure_policy_partition,
        execute_ranges,
        params_run_config,
        policy_blocks,
        read_run_artifact,
    )
    from quantbot_assets.summaries import policy_summary

    defs, instance = _runtime(settings)
    for policy_id in policy_ids:
        ensure_policy_partition(instance, policy_id)
    # One run per block of neighbouring policies and batch of days: it reuses
    # each day's truth layer computed from the same inputs and parameters, and
    # computes the days that have none.
    ranges = [
        (f"{first_day}|{first_policy}", f"{last_day}|{last_policy}")
        for first_policy, last_policy in policy_blocks(instance, policy_ids)
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
    catalogued = _catalog_runs(settings, outcomes, args.json)
    import pandas as pd

    rows = []
    for policy_id in policy_ids:
        mine = summaries[summaries["policy_id"] == policy_id] if len(summaries) else summaries
        calls = int(mine["calls_processed"].sum()) if len(mine) else 0
        part = trades[trades["policy_id"] == policy_id] if len(trades) else trades
        if len(part) == 0 and not any(o.success for o in outcomes):
            continue  # no run of this command succeeded: nothing to summarise
        # intervals seeded from the command's content (parameters, policy, days), not a run id
        seed = bootstrap_seed("policy_command", params, policy_id, days[0], days[-1])
        rows.append(policy_summary(part, calls, seed).assign(policy_id=policy_id))
    if not rows:
        # Every run failed: print each run's cause (no summary) and exit non-zero.
        return _print_outcomes(
            outcomes,
            args.json,
            {
                "policy_id": policy_ids[0] if len(policy_ids) == 1 else policy_ids,
                "summary": [],
                "catalogued": catalogued,
            },
        )
    table = pd.concat(rows, ignore_index=True)
    if not args.json:
        from quantbot_assets.reports import markdown_table, transpose_row

        where = ", ".join(str(o.run_dir) for o in outcomes)
        print(
            f"\nPolicy {', '.join(policy_ids)} {days[0]} .. {days[-1]} ({params['interval']}): "
            f"run directory {where}"
        )
        if len(policy_ids) == 1:
            print(markdown_table(transpose_row(table.drop(columns="policy_id"))))
        else:
            print(markdown_table(table[POLICY_TABLE_COLUMNS]))
    return _print_outcomes(
        outcomes,
        args.json,
        {
            "policy_id": policy_ids[0] if len(policy_ids) == 1 else policy_ids,
            "summary": table.to_dict(orient="records"),
            "catalogued": catalogued,
        },
    )


def _check_policy_json(text: str) -> None:
    """A --policy definition is validated before anything else (one line naming the field)."""
    from quantbot_assets.engine.policy import parse_policy

    try:
        parse_policy(text)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


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


def _read_grid(args: argparse.Namespace) -> str | None:
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


def cmd_optimize(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    params = backtest_params(args)
    days = _day_range(args, settings, months=True)
    months = sorted({d[:7] for d in days})
    grid_json = _read_grid(args)
    _preflight(settings, days)
    from quantbot_assets.assets.optimization import BEST_COLUMNS, best_overall
    from quantbot_assets.launch import execute_range, params_run_config

    defs, instance = _runtime(settings)
    extra = {
        "ops": {
            "frontier": {
                "config": {
                    "objective": args.objective,
                    "min_trades": args.min_trades,
                    "max_stop_out_rate": args.max_stop_out_rate,
                    **({"grid_json": grid_json} if grid_json is not None else {}),
                }
            }
        }
    }
    outcome = execute_range(
        defs,
        "frontier_search",
        months[0],
        months[-1],
        instance=instance,
        run_config=params_run_config(params, extra),
        label="frontier",
    )
    catalogued = _catalog_runs(settings, [outcome], args.json)
    if not args.json and outcome.success:
        import pandas as pd

        from quantbot_assets.reports import markdown_table

        rows = pd.read_parquet(outcome.run_dir / "results/frontier.parquet")
        best = best_overall(rows)
        for month, part in best.groupby("month"):
            print(f"\nFrontier {month} ({outcome.run_dir}):")
            print(markdown_table(part[BEST_COLUMNS], max_rows=10))
    return _print_outcomes([outcome], args.json, {"catalogued": catalogued})


def cmd_walk_forward(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    params = backtest_params(args)
    days = _day_range(args, settings, months=True)
    months = sorted({d[:7] for d in days})
    grid_json = _read_grid(args)
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
    _preflight(settings, days)
    from quantbot_assets.assets.optimization import verdict_tables
    from quantbot_assets.launch import execute_range, params_run_config

    defs, instance = _runtime(settings)
    extra = {
        "ops": {
            "walk_forward": {
                "config": {
                    "objective": args.objective,
                    "min_trades": args.min_trades,
                    "max_stop_out_rate": args.max_stop_out_rate,
                    "train_days": args.train_days,
                    "test_days": args.test_days,
                    "step_days": args.step_days,
                    "baseline_policy_id": args.baseline,
                    "min_oos_score": args.min_oos_score,
                    "first_day": days[0],
                    "last_day": days[-1],
                    **({"grid_json": grid_json} if grid_json is not None else {}),
                }
            }
        }
    }
    outcome = execute_range(
        defs,
        "walk_forward_search",
        months[0],
        months[-1],
        instance=instance,
        run_config=params_run_config(params, extra),
        label="walk-forward",
    )
    catalogued = _catalog_runs(settings, [outcome], args.json)
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
    return _print_outcomes([outcome], args.json, {"pooled": pooled, "catalogued": catalogued})


def cmd_quickstart(args: argparse.Namespace) -> int:
    """Sample data, a path-only week and two policy weeks, then the catalog."""
    from quantbot_assets.sample_data import ensure_sample_data

    settings = settings_from_args(args)
    data = ensure_sample_data(settings.data_dir)
    print(f"sample data: {data.alerts_db} and {data.candles_dir}")
    common = ["--from", "2024-01-01", "--to", "2024-01-07", "--interval", "1m"]
    if args.runs_dir:
        common += ["--runs-dir", args.runs_dir]
    code = main(["backtest", "path-only", *common])
    for policy_id in ("fixed-stop-5pct", "trailing-30pct-after-50pct"):
        code = max(code, main(["backtest", "policy", "--policy-id", policy_id, *common]))
    sync = ["backtest", "catalog-sync", "--stats"]
    if args.runs_dir:
        sync += ["--base-dir", args.runs_dir]
    code = max(code, main(sync))
    print(f"\nRun directories: {settings_from_args(args).runs_dir}/<YYYY-MM>/run_id=<id>/")
    print("Next: `quantbot backtest catalog-query --limit 10`, `quantbot dev` for the web UI.")
    return code


def cmd_sample_data(args: argparse.Namespace) -> int:
    from quantbot_assets.sample_data import ensure_sample_data, generate_sample_data

    settings = settings_from_args(args)
    data = (
        generate_sample_data(settings.data_dir)
        if args.force
        else ensure_sample_data(settings.data_dir)
    )
    print(f"calls:   {data.alerts_db}\ncandles: {data.candles_dir}")
    return 0


def cmd_policies(args: argparse.Namespace) -> int:
    from quantbot_assets.policy_registry import (
        RegistryError,
        add_policy,
        load_registry,
        policy_json,
    )

    settings = settings_from_args(args)
    try:
        if args.action == "add":
            if not args.policy_id or not args.policy:
                raise UsageError("policies add needs --policy-id and --policy")
            added = add_policy(settings.policy_registry, args.policy_id, args.policy)
            print(f"{'added' if added else 'already registered'}: {args.policy_id}")
        registry = load_registry(settings.policy_registry)
    except (RegistryError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    if args.action == "list":
        for policy_id, policy in registry.items():
            print(f"{policy_id}\t{policy_json(policy)}")
        return 0
    ensure_dagster_home(settings)
    import dagster as dg

    from quantbot_assets.sensors import sync_policy_partitions

    new = sync_policy_partitions(dg.DagsterInstance.get(), settings.policy_registry)
    print(
        f"policy partitions in sync ({len(registry)} policies; added: {', '.join(new) or 'none'})"
    )
    return 0


def cmd_runs_cleanup(args: argparse.Namespace) -> int:
    """Fail the STARTING/STARTED runs without process tags that have been silent too long."""
    from datetime import UTC, datetime, timedelta

    older_ms = parse_duration_ms(args.older_than, "--older-than")
    if older_ms <= 0:
        raise UsageError("--older-than must be positive")
    settings = settings_from_args(args)
    ensure_dagster_home(settings)
    import dagster as dg

    from quantbot_assets.io_manager import RunDirectories
    from quantbot_assets.stale_runs import fail_untagged_runs

    run_dirs = RunDirectories(
        runs_dir=str(settings.runs_dir), project_dir=str(settings.project_dir)
    )
    now = datetime.now(UTC)
    with _instance_lock():
        instance = dg.DagsterInstance.get()
        ghosts = fail_untagged_runs(
            instance, run_dirs, timedelta(milliseconds=older_ms), dry_run=args.dry_run, now=now
        )
    verb = "would mark failed" if args.dry_run else "marked failed"
    for ghost in ghosts:
        idle = int((now - ghost.last_event).total_seconds())
        print(
            f"{verb} {ghost.run_id} {ghost.status} {ghost.job_name} "
            f"last event {ghost.last_event.isoformat(timespec='seconds')} ({idle}s ago)"
        )
    print(
        f"{len(ghosts)} run(s) without process tags and silent for {args.older_than} or more"
        + (" (dry run: nothing changed)" if args.dry_run else "")
    )
    return 0


def cmd_dev(args: argparse.Namespace) -> int:
    from quantbot_assets.dev_server import PortTaken, run_dev

    try:
        return run_dev(settings_from_args(args), host=args.host, port=args.port)
    except PortTaken as exc:
        raise UsageError(str(exc)) from None


# --- parser ----------------------------------------------------------------------


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--calls-from-duckdb", metavar="PATH", help="calls in a DuckDB file (table --calls-table)"
    )
    parser.add_argument("--calls-from-parquet", metavar="PATH", help="calls in a Parquet file")
    parser.add_argument("--calls-from-csv", metavar="PATH", help="calls in a CSV file")
    parser.add_argument(
        "--calls-table", metavar="NAME", help="table or view in the DuckDB file (default alerts)"
    )
    parser.add_argument(
        "--candles", metavar="PATH", help="Parquet file or dataset, or DuckDB file, of candles"
    )
    parser.add_argument(
        "--runs-dir", metavar="DIR", help="where run directories go (default runs/)"
    )


def _add_backtest_options(parser: argparse.ArgumentParser, with_range: bool = True) -> None:
    _add_data_options(parser)
    if with_range:
        parser.add_argument(
            "--from", dest="from_", required=True, metavar="YYYY-MM-DD", help="first day (UTC)"
        )
        parser.add_argument(
            "--to", required=True, metavar="YYYY-MM-DD", help="last day (UTC), included"
        )
    parser.add_argument(
        "--interval", default="1m", help="bar interval: 1m, 5m, 15m, 1h (default 1m)"
    )
    parser.add_argument(
        "--horizon", metavar="DURATION", help="window after the alert (default 48h)"
    )
    parser.add_argument("--entry-delay", metavar="DURATION", help="delay before entry (default 0)")
    parser.add_argument("--fee-bps", type=float, help="fee per side in bps (default 0)")
    parser.add_argument("--slippage-bps", type=float, help="slippage per side in bps (default 0)")
    parser.add_argument("--json", action="store_true", help="print a JSON result for scripts")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="quantbot", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    quick = commands.add_parser("quickstart", help="sample data, a week of backtests, the catalog")
    quick.add_argument("--runs-dir", metavar="DIR")
    quick.set_defaults(func=cmd_quickstart)

    sample = commands.add_parser("sample-data", help="generate the sample calls and candles")
    sample.add_argument("--force", action="store_true", help="regenerate even if present")
    sample.set_defaults(func=cmd_sample_data)

    policies = commands.add_parser("policies", help="the policy registry (policies.yaml)")
    policies.add_argument("action", choices=["list", "sync", "add"])
    policies.add_argument("--policy-id")
    policies.add_argument("--policy", help="policy JSON")
    policies.set_defaults(func=cmd_policies)

    dev = commands.add_parser("dev", help="the Dagster web UI and daemon on 127.0.0.1")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=3000)
    dev.set_defaults(func=cmd_dev)

    runs = commands.add_parser("runs", help="Dagster runs of this project")
    runs_sub = runs.add_subparsers(dest="runs_command", required=True)
    cleanup = runs_sub.add_parser(
        "cleanup",
        help="mark failed the STARTING/STARTED runs without process tags and without any "
        "event for --older-than (ghosts of killed workers from before runs were tagged)",
    )
    cleanup.add_argument(
        "--older-than", default="1h", metavar="DURATION", help="silence needed (default 1h)"
    )
    cleanup.add_argument("--dry-run", action="store_true", help="only list the runs")
    cleanup.add_argument("--runs-dir", metavar="DIR", help="where run directories are")
    cleanup.set_defaults(func=cmd_runs_cleanup)

    backtest = commands.add_parser("backtest", help="run backtests and query their catalog")
    sub = backtest.add_subparsers(dest="backtest_command", required=True)
    path_only = sub.add_parser("path-only", help="truth layer of each day of a range")
    _add_backtest_options(path_only)
    path_only.set_defaults(func=cmd_path_only)
    policy = sub.add_parser("policy", help="one policy on each day of a range")
    _add_backtest_options(policy)
    policy.add_argument(
        "--policy-id",
        action="append",
        help="registry id (repeatable or comma-separated; a new id is registered with --policy)",
    )
    policy.add_argument("--all-policies", action="store_true", help="every policy of the registry")
    policy.add_argument(
        "--policy", help='policy JSON, e.g. {"kind":"fixed_stop","stop_loss_bps":500}'
    )
    policy.set_defaults(func=cmd_policy)
    optimize = sub.add_parser("optimize", help="policy-grid frontier of each month of a range")
    _add_backtest_options(optimize)
    optimize.add_argument(
        "--grid", metavar="FILE", help='JSON {"policy_id": {policy}} (default grid otherwise)'
    )
    optimize.add_argument("--objective", default="median_return_bps")
    optimize.add_argument("--min-trades", type=int, default=20)
    optimize.add_argument("--max-stop-out-rate", type=float, default=0.8)
    optimize.set_defaults(func=cmd_optimize)
    walk = sub.add_parser(
        "walk-forward",
        help="choose the grid's best policy on past days, score it on the days after",
    )
    _add_backtest_options(walk)
    walk.add_argument(
        "--grid", metavar="FILE", help='JSON {"policy_id": {policy}} (default grid otherwise)'
    )
    walk.add_argument("--objective", default="median_return_bps")
    walk.add_argument("--min-trades", type=int, default=20)
    walk.add_argument("--max-stop-out-rate", type=float, default=0.8)
    walk.add_argument("--train-days", type=int, default=14, help="days to choose on (14)")
    walk.add_argument("--test-days", type=int, default=7, help="days to score on (7)")
    walk.add_argument("--step-days", type=int, default=7, help="days between folds (7)")
    walk.add_argument(
        "--baseline",
        default="time_stop-hold1440m",
        metavar="POLICY_ID",
        help="grid policy scored on the same test days (default time_stop-hold1440m, hold a day)",
    )
    walk.add_argument(
        "--min-oos-score",
        type=float,
        default=0.0,
        help="a caller holds up when its pooled out-of-sample score is above this (0)",
    )
    walk.set_defaults(func=cmd_walk_forward)
    add_backtest_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Dagster's beta/preview notices are for developers, not for command output.
    warnings.filterwarnings("ignore", module="dagster")
    warnings.filterwarnings("ignore", message=".*(beta|preview|superseded).*", category=Warning)
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    from quantbot_assets.signals import Interrupted, stop_signals

    try:
        with stop_signals():
            return func(args)
    except (UsageError, SettingsError) as exc:
        _say(f"quantbot: error: {exc}")
        return 2
    except Interrupted as exc:
        _say(f"quantbot: stopped by {exc}; the current run is marked failed")
        return exc.exit_code
    except KeyboardInterrupt:
        _say("quantbot: interrupted; the current run is marked failed")
        return 130


def _say(line: str) -> None:
    """One line to stderr, even when the terminal is gone (SIGHUP)."""
    with contextlib.suppress(OSError, ValueError):
        print(line, file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
