"""The argparse tree of `quantbot`: every command, its options and its handler.

Options shared by several commands come from options.py; each handler lives in
the module of its command group. A mistake on the command line is a UsageError
(one line, exit code 2) like every other error of the command, not argparse's
usage text.
"""

from __future__ import annotations

import argparse
import re
from typing import NoReturn

from quantbot_assets.cli import backtest, catalog, dev, policies, run_dirs, runs, search
from quantbot_assets.cli.options import (
    add_backtest_options,
    add_grid_search,
    add_json,
    add_runs_dir,
)
from quantbot_assets.cli.validators import positive_duration
from quantbot_assets.errors import UsageError

DESCRIPTION = """\
The `quantbot` command: quick start, backtests, policies, catalog, dev server.

Errors a user can fix (bad dates, missing files, unknown fields, a calls or
candles file that cannot be used) print one line to stderr and exit with 2,
before any run starts. A run that fails prints its cause in one line and the
command exits with 1. Ctrl-C, SIGTERM and SIGHUP stop the whole command and
mark the current run failed (exit 130, 143, 129).
"""

_ARGUMENT = re.compile(r"^argument (?:(-[^:/ ]+)(?:/[^: ]+)*|[^:]+): ")
CATALOG_DB_HELP = "catalog database (default: data/backtest_catalog.duckdb)"
MACHINE_READABLE = "machine-readable output"


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose mistakes raise UsageError instead of printing usage."""

    def error(self, message: str) -> NoReturn:
        # "argument --horizon: 'soon': use ..." -> "--horizon 'soon': use ..."; a command's
        # name ("argument backtest_command: invalid choice ...") is left out.
        named = _ARGUMENT.sub(lambda m: f"{m[1]} " if m[1] else "", message)
        raise UsageError(f"{named} (see `{self.prog} --help`)")


def build_parser() -> Parser:
    parser = Parser(
        prog="quantbot",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _add_getting_started(commands)
    _add_policies(commands)
    _add_runs(commands)
    backtest_parser = commands.add_parser("backtest", help="run backtests and query their catalog")
    sub = backtest_parser.add_subparsers(dest="backtest_command", required=True)
    _add_backtests(sub)
    _add_searches(sub)
    _add_catalog(sub)
    _add_run_dirs(sub)
    return parser


Commands = argparse._SubParsersAction


def _add_getting_started(commands: Commands) -> None:
    quick = commands.add_parser("quickstart", help="sample data, a week of backtests, the catalog")
    add_runs_dir(quick)
    quick.set_defaults(func=dev.cmd_quickstart)

    sample = commands.add_parser("sample-data", help="generate the sample calls and candles")
    sample.add_argument("--force", action="store_true", help="regenerate even if present")
    sample.set_defaults(func=dev.cmd_sample_data)

    server = commands.add_parser("dev", help="the Dagster web UI and daemon on 127.0.0.1")
    server.add_argument("--host", default="127.0.0.1")
    server.add_argument("--port", type=int, default=3000)
    server.set_defaults(func=dev.cmd_dev)


def _add_policies(commands: Commands) -> None:
    parser = commands.add_parser("policies", help="the policy registry (policies.yaml)")
    parser.add_argument("action", choices=["list", "sync", "add"])
    parser.add_argument("--policy-id")
    parser.add_argument("--policy", help="policy JSON")
    parser.set_defaults(func=policies.cmd_policies)


def _add_runs(commands: Commands) -> None:
    parser = commands.add_parser("runs", help="Dagster runs of this project")
    sub = parser.add_subparsers(dest="runs_command", required=True)
    cleanup = sub.add_parser(
        "cleanup",
        help="mark failed the STARTING/STARTED runs without process tags and without any "
        "event for --older-than (ghosts of killed workers from before runs were tagged)",
    )
    cleanup.add_argument(
        "--older-than",
        type=positive_duration,
        default="1h",
        metavar="DURATION",
        help="silence needed (default 1h)",
    )
    cleanup.add_argument("--dry-run", action="store_true", help="only list the runs")
    add_runs_dir(cleanup, help="where run directories are")
    cleanup.set_defaults(func=runs.cmd_runs_cleanup)


def _add_backtests(sub: Commands) -> None:
    path_only = sub.add_parser("path-only", help="truth layer of each day of a range")
    add_backtest_options(path_only)
    path_only.set_defaults(func=backtest.cmd_path_only)

    policy = sub.add_parser("policy", help="one policy on each day of a range")
    add_backtest_options(policy)
    policy.add_argument(
        "--policy-id",
        action="append",
        help="registry id (repeatable or comma-separated; a new id is registered with --policy)",
    )
    policy.add_argument("--all-policies", action="store_true", help="every policy of the registry")
    policy.add_argument(
        "--policy", help='policy JSON, e.g. {"kind":"fixed_stop","stop_loss_bps":500}'
    )
    policy.set_defaults(func=backtest.cmd_policy)


def _add_searches(sub: Commands) -> None:
    optimize = sub.add_parser("optimize", help="policy-grid frontier of each month of a range")
    add_backtest_options(optimize)
    add_grid_search(optimize)
    optimize.set_defaults(func=search.cmd_optimize)

    walk = sub.add_parser(
        "walk-forward",
        help="choose the grid's best policy on past days, score it on the days after",
    )
    add_backtest_options(walk)
    add_grid_search(walk)
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
    walk.set_defaults(func=search.cmd_walk_forward)


def _add_catalog(sub: Commands) -> None:
    from quantbot_assets.catalog.queries import RUN_STATUSES, RUN_TYPES
    from quantbot_assets.schemas import ARTIFACT_SCHEMAS

    sync = sub.add_parser(
        "catalog-sync", help="register finished run directories in the DuckDB catalog"
    )
    add_runs_dir(sync, help="runs root")
    sync.add_argument("--duckdb", help=CATALOG_DB_HELP)
    sync.add_argument("--exports-dir", help="golden exports directory (default: data/exports)")
    sync.add_argument("--stats", action="store_true", help="print catalog statistics")
    add_json(sync, MACHINE_READABLE)
    sync.set_defaults(func=catalog.cmd_catalog_sync)

    query = sub.add_parser("catalog-query", help="query catalogued runs")
    query.add_argument(
        "--duckdb",
        help=CATALOG_DB_HELP
        + "; or the URL of its published snapshot, s3://bucket/key (default: QUANTBOT_CATALOG_URL)",
    )
    query.add_argument("--limit", type=int, default=20)
    query.add_argument("--run-type", help=f"one of: {', '.join(RUN_TYPES)}")
    query.add_argument("--status", help=f"one of: {', '.join(RUN_STATUSES)}")
    query.add_argument("--from-date", help="created on or after this UTC day (YYYY-MM-DD)")
    query.add_argument("--to-date", help="created on or before this UTC day (YYYY-MM-DD)")
    query.add_argument("--run-id", help="with --artifact-type: print that artifact's path")
    query.add_argument("--artifact-type", help=f"one of: {', '.join(ARTIFACT_SCHEMAS)}")
    query.add_argument(
        "--rejected", action="store_true", help="list rejected run directories and reasons"
    )
    query.add_argument(
        "--same-as",
        metavar="RUN_ID",
        help="runs with the config_hash and data_fingerprint of RUN_ID (same config and data)",
    )
    add_json(query, MACHINE_READABLE)
    query.set_defaults(func=catalog.cmd_catalog_query)


def _add_run_dirs(sub: Commands) -> None:
    listing = sub.add_parser("list", help="list run directories from their run.json")
    add_runs_dir(listing, help="runs root")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument(
        "--same-as",
        metavar="RUN_ID",
        help="only runs with the config_hash and data_fingerprint of RUN_ID (same config, data)",
    )
    add_json(listing, MACHINE_READABLE)
    listing.set_defaults(func=run_dirs.cmd_list)

    diff = sub.add_parser(
        "diff", help="what differs between two runs (parameters, data, code, trades, summary)"
    )
    diff.add_argument("run_a", metavar="RUN_A", help="run id (under --runs-dir) or run directory")
    diff.add_argument("run_b", metavar="RUN_B", help="run id (under --runs-dir) or run directory")
    add_runs_dir(diff, help="runs root for run ids")
    add_json(diff, MACHINE_READABLE)
    diff.set_defaults(func=run_dirs.cmd_diff)
