"""Partition definitions, declared once.

The days start at `Settings.first_day` (QUANTBOT_FIRST_DAY, default
2024-01-01), read once when this module is first imported (where the code
location or a command loads); months start at that day's month.
"""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

from quantbot_assets.defs.policies.partitions import policy_partitions_def
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
# Multi-partition keys join dimension values with '|' in alphabetical order of
# the dimension names: "2024-01-03|fixed-stop-5pct".
day_policy_partitions_def = dg.MultiPartitionsDefinition(
    {"day": day_partitions_def, "policy": policy_partitions_def}
)


def day_and_policy(key: str) -> tuple[str, str]:
    """The (day, policy id) of a day x policy partition key."""
    multi = (
        key
        if isinstance(key, dg.MultiPartitionKey)
        else day_policy_partitions_def.get_partition_key_from_str(key)
    )
    dims = multi.keys_by_dimension
    return dims["day"], dims["policy"]


# A backfill of day partitions runs as few runs as this allows: memory grows
# with the days of one run (their calls and candle windows are held at once).
MAX_DAYS_PER_RUN = 31
day_backfill_policy = dg.BackfillPolicy.multi_run(max_partitions_per_run=MAX_DAYS_PER_RUN)

# A (day, policy) partition reads the truth layer of its day.
DAY_OF_DAY_POLICY = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="day")


def month_days(month: str) -> list[str]:
    """Every day of a YYYY-MM month partition's time window (also those before the first day)."""
    window = month_partitions_def.time_window_for_partition_key(month)
    days = (window.end - window.start).days
    return [(window.start + timedelta(days=i)).date().isoformat() for i in range(days)]
