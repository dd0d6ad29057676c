"""Partition definitions, declared once.

The days start at `Settings.first_day` (QUANTBOT_FIRST_DAY, default
2024-01-01), read once when this module is first imported (where the code
location or a command loads); months start at that day's month.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dagster as dg

from quantbot_assets.settings import Settings


def day_partitions(first_day: str) -> dg.DailyPartitionsDefinition:
    """UTC days from `first_day` (YYYY-MM-DD) to yesterday."""
    return dg.DailyPartitionsDefinition(start_date=first_day, timezone="UTC")


def month_partitions(first_day: str) -> dg.MonthlyPartitionsDefinition:
    """UTC months from the month of `first_day` to the last complete month."""
    return dg.MonthlyPartitionsDefinition(start_date=first_day[:7], fmt="%Y-%m", timezone="UTC")


PARTITIONS_START = Settings.from_env().first_day

day_partitions_def = day_partitions(PARTITIONS_START)
month_partitions_def = month_partitions(PARTITIONS_START)
policy_partitions_def = dg.DynamicPartitionsDefinition(name="policy_id")
# Multi-partition keys join dimension values with '|' in alphabetical order of
# the dimension names: "2024-01-03|fixed-stop-5pct".
day_policy_partitions_def = dg.MultiPartitionsDefinition(
    {"day": day_partitions_def, "policy": policy_partitions_def}
)
# A backfill of day partitions runs as few runs as this allows: memory grows
# with the days of one run (their calls and candle windows are held at once).
MAX_DAYS_PER_RUN = 31
day_backfill_policy = dg.BackfillPolicy.multi_run(max_partitions_per_run=MAX_DAYS_PER_RUN)

# A (day, policy) partition reads the truth layer of its day.
DAY_OF_DAY_POLICY = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="day")


@dataclass(frozen=True)
class PartitionWindow:
    """What a partition key means: a UTC time window and, maybe, a policy id."""

    key: str
    start: datetime
    end: datetime
    policy_id: str | None = None

    @property
    def first_day(self) -> str:
        return self.start.date().isoformat()

    @property
    def last_day(self) -> str:
        """The last day inside the window (windows end exclusive)."""
        return (self.end - timedelta(days=1)).date().isoformat()

    @property
    def start_ms(self) -> int:
        return int(self.start.timestamp() * 1000)

    @property
    def end_ms(self) -> int:
        return int(self.end.timestamp() * 1000)


def parse_partition_key(key: str | dg.MultiPartitionKey) -> PartitionWindow:
    """Normalise a day, month or day|policy key (plain str or MultiPartitionKey)."""
    if isinstance(key, dg.MultiPartitionKey):
        dims = key.keys_by_dimension
        day, policy = dims["day"], dims["policy"]
    elif "|" in key:
        day, policy = key.split("|", 1)
    else:
        day, policy = key, None
    try:
        if len(day) == 7:  # YYYY-MM
            start = datetime.strptime(day, "%Y-%m").replace(tzinfo=UTC)
            end = (start + timedelta(days=32)).replace(day=1)
        else:
            start = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC)
            end = start + timedelta(days=1)
    except ValueError as exc:
        raise ValueError(
            f"partition key {str(key)!r} is not YYYY-MM-DD, YYYY-MM or YYYY-MM-DD|policy"
        ) from exc
    return PartitionWindow(key=str(key), start=start, end=end, policy_id=policy)
