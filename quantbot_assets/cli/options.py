"""Options shared by several commands, each defined once.

Sources of calls and candles, where run directories live, the day range, the
backtest parameters (interval, horizon, entry delay, costs) and `--json`. Values
are checked while parsing (validators.py); what needs the settings or the data
(the range against QUANTBOT_FIRST_DAY, files that exist) is checked in inputs.py.
"""

from __future__ import annotations

import argparse

from quantbot_assets.cli.validators import (
    day,
    duration,
    non_negative_float,
    one_of,
    positive_duration,
)
from quantbot_assets.params import INTERVALS


def add_runs_dir(parser: argparse.ArgumentParser, help: str = "where run directories go") -> None:
    """`--runs-dir` (also spelled `--base-dir`, as the catalog commands always had it)."""
    parser.add_argument(
        "--runs-dir",
        "--base-dir",
        dest="runs_dir",
        metavar="DIR",
        help=f"{help} (default: the settings' runs dir, runs/)",
    )


def add_json(
    parser: argparse.ArgumentParser, help: str = "print a JSON result for scripts"
) -> None:
    parser.add_argument("--json", action="store_true", help=help)


def add_sources(parser: argparse.ArgumentParser) -> None:
    """Where the calls (one of three formats) and the candles come from, and where runs go."""
    calls = parser.add_mutually_exclusive_group()
    calls.add_argument(
        "--calls-from-duckdb", metavar="PATH", help="calls in a DuckDB file (table --calls-table)"
    )
    calls.add_argument("--calls-from-parquet", metavar="PATH", help="calls in a Parquet file")
    calls.add_argument("--calls-from-csv", metavar="PATH", help="calls in a CSV file")
    parser.add_argument(
        "--calls-table", metavar="NAME", help="table or view in the DuckDB file (default alerts)"
    )
    parser.add_argument(
        "--candles", metavar="PATH", help="Parquet file or dataset, or DuckDB file, of candles"
    )
    add_runs_dir(parser)


def add_day_range(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--from",
        dest="from_",
        type=day,
        required=True,
        metavar="YYYY-MM-DD",
        help="first day (UTC)",
    )
    parser.add_argument(
        "--to", type=day, required=True, metavar="YYYY-MM-DD", help="last day (UTC), included"
    )


def add_backtest_params(parser: argparse.ArgumentParser) -> None:
    """The parameters of the truth layer: bars, window, entry and costs."""
    parser.add_argument(
        "--interval",
        type=one_of(INTERVALS),
        default="1m",
        help=f"bar interval: {', '.join(INTERVALS)} (default 1m)",
    )
    parser.add_argument(
        "--horizon",
        type=positive_duration,
        metavar="DURATION",
        help="window after the alert (default 48h)",
    )
    parser.add_argument(
        "--entry-delay", type=duration, metavar="DURATION", help="delay before entry (default 0)"
    )
    parser.add_argument(
        "--fee-bps", type=non_negative_float, help="fee per side in bps (default 0)"
    )
    parser.add_argument(
        "--slippage-bps", type=non_negative_float, help="slippage per side in bps (default 0)"
    )


def add_backtest_options(parser: argparse.ArgumentParser) -> None:
    """Everything a backtest command takes: sources, range, parameters, --json."""
    add_sources(parser)
    add_day_range(parser)
    add_backtest_params(parser)
    add_json(parser)


def add_grid_search(parser: argparse.ArgumentParser) -> None:
    """The policy grid and how its policies are ranked (frontier and walk-forward)."""
    parser.add_argument(
        "--grid", metavar="FILE", help='JSON {"policy_id": {policy}} (default grid otherwise)'
    )
    parser.add_argument("--objective", default="median_return_bps")
    parser.add_argument("--min-trades", type=int, default=20)
    parser.add_argument("--max-stop-out-rate", type=float, default=0.8)
