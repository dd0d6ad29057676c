"""What a command's options mean once the settings are known: settings, parameters, days.

Checks that need the settings or the data (files that exist, the range against
QUANTBOT_FIRST_DAY and today, the calls and candles themselves) raise
UsageError or DataError here, before Dagster is loaded and before any run.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from datetime import date
from pathlib import Path
from typing import Any

from quantbot_assets.errors import UsageError
from quantbot_assets.settings import Settings

CALLS_OPTIONS = ("calls_from_duckdb", "calls_from_parquet", "calls_from_csv")


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The environment's settings with the command's sources and runs directory."""
    settings = Settings.from_env()
    changes: dict[str, Any] = {}
    given = [getattr(args, name, None) for name in CALLS_OPTIONS]
    calls = next((p for p in given if p), None)  # the parser allows only one
    if calls:
        path = Path(calls).expanduser().resolve()
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
    """The run parameters (params.py) given on the command line; the rest keep defaults."""
    params: dict[str, Any] = {"interval": args.interval}
    if args.horizon is not None:
        params["horizon_ms"] = args.horizon.ms
    if args.entry_delay is not None:
        params["entry_delay_ms"] = args.entry_delay.ms
    for name in ("fee_bps", "slippage_bps"):
        value = getattr(args, name, None)
        if value is not None:
            params[name] = value
    return params


def day_range(args: argparse.Namespace, settings: Settings, months: bool = False) -> list[str]:
    """The days of --from .. --to (whole months for the month-partitioned searches)."""
    from quantbot_assets.preflight import check_day_range, check_month_range, day_keys

    start: date = args.from_
    end: date = args.to
    try:
        days = day_keys(start, end)
        (check_month_range if months else check_day_range)(start, end, settings.first_day)
    except ValueError as exc:  # an empty range, or days outside the partitions (PreflightError)
        raise UsageError(str(exc)) from None
    return days


def preflight(settings: Settings, days: list[str]) -> None:
    """The data checks made before any run (DataError, one line; see preflight.py)."""
    from quantbot_assets.preflight import check_sources

    notes = check_sources(settings, date.fromisoformat(days[0]), date.fromisoformat(days[-1]))
    for note in notes:
        print(f"quantbot: note: {note}", file=sys.stderr)
