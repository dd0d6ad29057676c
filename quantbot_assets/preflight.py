"""Checks made by the command before any run starts: every data error a user can make.

The sources' own structural checks (sources.calls.check_calls_source,
sources.candles.check_candle_source) on the calls source (whole: it is small)
and on a sample of the candle store (schemas of the range's files, timestamp
statistics), and the date range against the partitions. Each failure is one
line naming the file, the column or the value; the command exits with 2 and
no run (nor run directory) is made.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from quantbot_assets.errors import DataError
from quantbot_assets.settings import Settings
from quantbot_assets.sources.access import (
    SourceError,
    calls_source_from_path,
    candle_source_from_path,
)
from quantbot_assets.sources.calls import check_calls_source
from quantbot_assets.sources.candles import check_candle_source
from quantbot_assets.storage import sync_mirror


class PreflightError(DataError, ValueError):
    """A data or range error found before any run: one line."""


def one_line(text: str, limit: int = 400) -> str:
    """The first non-empty line of `text`, shortened to `limit` characters."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    line = lines[0] if lines else "failed"
    return line if len(line) <= limit else line[: limit - 1] + "…"


def day_keys(start: date, end: date) -> list[str]:
    """Day partition keys from `start` to `end`, both included."""
    if end < start:
        raise ValueError(f"empty range: --to {end} is before --from {start}")
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def last_complete_day() -> date:
    """Day partitions end yesterday (UTC): today's partition exists only once today is over."""
    return datetime.now(UTC).date() - timedelta(days=1)


def check_day_range(first: date, last: date, first_day: str) -> None:
    """Refuse days outside the day partitions: before QUANTBOT_FIRST_DAY, or not yet complete."""
    start = date.fromisoformat(first_day)
    if first < start:
        raise PreflightError(
            f"--from {first} is before the first day partition {first_day}; "
            f"set QUANTBOT_FIRST_DAY={first.isoformat()} (or earlier) to backtest older data"
        )
    end = last_complete_day()
    if last > end:
        raise PreflightError(
            f"--to {last} is after the last complete UTC day {end}: a day is backtested "
            "once it is over"
        )


def check_month_range(first: date, last: date, first_day: str) -> None:
    """Months run from the month of QUANTBOT_FIRST_DAY to the last complete month."""
    check_day_range(first, last, first_day)
    this_month = datetime.now(UTC).date().replace(day=1)
    if last >= this_month:
        raise PreflightError(
            f"--to {last} is in the current month {this_month:%Y-%m}: a month is searched "
            "once it is over"
        )


def _window_ms(first: date, last: date) -> tuple[int, int]:
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    end = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def check_sources(settings: Settings, first: date, last: date) -> list[str]:
    """Open the calls and candle sources cheaply and run their structural checks; notes to print."""
    if settings.uses_sample_data and not settings.calls_path.exists():
        from quantbot_assets.sample_data import ensure_sample_data

        ensure_sample_data(settings.data_dir)
    start_ms, end_ms = _window_ms(first, last)
    for url, mirror in (
        (settings.calls_url, settings.calls_path),
        (settings.candles_url, settings.candles_path),
    ):
        if url:  # sources in object storage: refresh the local mirror the checks and runs read
            sync_mirror(url, mirror)
    try:
        calls = calls_source_from_path(settings.calls_path, settings.calls_table)
        check_calls_source(calls)
        candles = candle_source_from_path(settings.candles_path, settings.candles_table)
        return check_candle_source(candles, start_ms, end_ms)
    except SourceError as exc:
        raise PreflightError(one_line(str(exc))) from None
    except OSError as exc:  # unreadable file, permission denied
        raise PreflightError(one_line(f"{exc.filename or ''}: {exc.strerror or exc}")) from None
