"""Arrow schemas of every artifact type, and their versions.

One place for column names and types: the engine produces DataFrames with
these columns, the IO manager validates and writes them with these schemas,
and the catalog refuses run directories whose manifest names a version it
does not know.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

ALERTS = pa.schema(
    [
        pa.field("call_id", pa.string(), nullable=False),
        pa.field("mint", pa.string(), nullable=False),
        pa.field("caller_name", pa.string(), nullable=False),
        pa.field("chain", pa.string(), nullable=False),
        pa.field("alert_ts_ms", pa.int64(), nullable=False),
        pa.field("created_at", pa.string()),
    ]
)

PATHS = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("call_id", pa.string(), nullable=False),
        pa.field("caller_name", pa.string(), nullable=False),
        pa.field("mint", pa.string(), nullable=False),
        pa.field("chain", pa.string(), nullable=False),
        pa.field("interval", pa.string(), nullable=False),
        # DOUBLE, not BIGINT, in this one file: the time-series SQL (docs/compatibility.md)
        # computes `alert_ts_ms * INTERVAL '1 millisecond'`, which DuckDB can only do for a
        # DOUBLE (a BIGINT factor is cast to INT32 and overflows). Epoch ms are
        # integers below 2**53, so the DOUBLE holds them exactly.
        pa.field("alert_ts_ms", pa.float64(), nullable=False),
        pa.field("t0_ms", pa.int64(), nullable=False),
        pa.field("p0", pa.float64(), nullable=False),
        pa.field("hit_2x", pa.bool_(), nullable=False),
        pa.field("t_2x_ms", pa.int64()),
        pa.field("hit_3x", pa.bool_(), nullable=False),
        pa.field("t_3x_ms", pa.int64()),
        pa.field("hit_4x", pa.bool_(), nullable=False),
        pa.field("t_4x_ms", pa.int64()),
        pa.field("peak_multiple", pa.float64(), nullable=False),
        pa.field("peak_ts_ms", pa.int64(), nullable=False),
        pa.field("dd_bps", pa.float64(), nullable=False),
        pa.field("dd_to_2x_bps", pa.float64()),
        pa.field("alert_to_activity_ms", pa.int64()),
        pa.field("bars", pa.int64(), nullable=False),
        # 1.1.0. New columns are nullable: files written before them read as null.
        pa.field("window_complete", pa.bool_()),
    ]
)

TRADES = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("policy_id", pa.string(), nullable=False),
        pa.field("call_id", pa.string(), nullable=False),
        pa.field("caller_name", pa.string(), nullable=False),
        pa.field("mint", pa.string(), nullable=False),
        pa.field("chain", pa.string(), nullable=False),
        pa.field("entry_ts_ms", pa.int64(), nullable=False),
        pa.field("entry_px", pa.float64(), nullable=False),
        pa.field("exit_ts_ms", pa.int64(), nullable=False),
        pa.field("exit_px", pa.float64(), nullable=False),
        pa.field("exit_reason", pa.string(), nullable=False),
        pa.field("realized_return_bps", pa.float64(), nullable=False),
        pa.field("stop_out", pa.bool_(), nullable=False),
        pa.field("max_adverse_excursion_bps", pa.float64(), nullable=False),
        pa.field("time_exposed_ms", pa.int64(), nullable=False),
        pa.field("tail_capture", pa.float64()),
        # 1.1.0 (intrabar ambiguity, window completeness); null in older files.
        pa.field("ambiguous", pa.bool_()),
        pa.field("ambiguity_resolved", pa.bool_()),
        pa.field("optimistic_return_bps", pa.float64()),
        pa.field("window_complete", pa.bool_()),
    ]
)
# The `trades` artifact (1.1.0): the engine's rows and the UTC day of the call,
# so one file can hold every day of a run.
TRADES_ARTIFACT = TRADES.append(pa.field("day", pa.string(), nullable=False))

# 1.2.0 (summary, frontier): 90 % percentile-bootstrap intervals of the median return and
# the win rate (docs/semantics.md "Intervals"); null below 2 trades and in older files.
INTERVAL_FIELDS = [
    pa.field("median_return_lo_bps", pa.float64()),
    pa.field("median_return_hi_bps", pa.float64()),
    pa.field("win_rate_lo", pa.float64()),
    pa.field("win_rate_hi", pa.float64()),
]
INTERVAL_COLUMNS: tuple[str, ...] = tuple(f.name for f in INTERVAL_FIELDS)

# The engine's `summarize` returns exactly SUMMARY_METRICS; the asset adds
# run_id, policy_id and the partition's day.
SUMMARY_METRICS = pa.schema(
    [
        pa.field("calls_processed", pa.int64(), nullable=False),
        pa.field("calls_excluded", pa.int64(), nullable=False),
        pa.field("trades_count", pa.int64(), nullable=False),
        pa.field("avg_return_bps", pa.float64()),
        pa.field("median_return_bps", pa.float64()),
        pa.field("p25_return_bps", pa.float64()),
        pa.field("p75_return_bps", pa.float64()),
        pa.field("p90_return_bps", pa.float64()),
        pa.field("win_rate", pa.float64()),
        pa.field("profit_factor", pa.float64()),
        pa.field("stop_out_rate", pa.float64()),
        pa.field("avg_max_adverse_excursion_bps", pa.float64()),
        pa.field("avg_time_exposed_ms", pa.float64()),
        pa.field("median_time_exposed_ms", pa.float64()),
        pa.field("avg_tail_capture", pa.float64()),
        pa.field("median_tail_capture", pa.float64()),
        # 1.1.0; null in older files.
        pa.field("ambiguous_trade_rate", pa.float64()),
        pa.field("avg_optimistic_return_bps", pa.float64()),
        pa.field("median_optimistic_return_bps", pa.float64()),
        pa.field("window_incomplete_trades", pa.int64()),
        *INTERVAL_FIELDS,  # 1.2.0
    ]
)

SUMMARY = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("policy_id", pa.string(), nullable=False),
        pa.field("day", pa.string(), nullable=False),
        *SUMMARY_METRICS,
    ]
)

FRONTIER = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("caller_name", pa.string(), nullable=False),
        pa.field("policy_id", pa.string(), nullable=False),
        pa.field("policy_params", pa.string(), nullable=False),
        pa.field("trades_count", pa.int64(), nullable=False),
        pa.field("avg_return_bps", pa.float64()),
        pa.field("median_return_bps", pa.float64()),
        pa.field("stop_out_rate", pa.float64()),
        pa.field("avg_max_adverse_excursion_bps", pa.float64()),
        pa.field("objective_score", pa.float64()),
        # 1.1.0: the optimistic side of the range and the share of ambiguous trades
        pa.field("avg_optimistic_return_bps", pa.float64()),
        pa.field("median_optimistic_return_bps", pa.float64()),
        pa.field("ambiguous_trade_rate", pa.float64()),
        pa.field("meets_constraints", pa.bool_(), nullable=False),
        pa.field("pareto", pa.bool_(), nullable=False),
        pa.field("rank", pa.int64()),
        *INTERVAL_FIELDS,  # 1.2.0
    ]
)
# The `frontier` artifact (1.1.0): the engine's rows and the month (the
# partition), so one file can hold several months.
FRONTIER_ARTIFACT = FRONTIER.append(pa.field("month", pa.string(), nullable=False))

# Walk-forward (docs/semantics.md "Walk-forward"): kind "fold" rows, one per fold and
# caller (the policy chosen on the train days, its score there and on the test days, the
# baseline's on the test days); kind "pooled" rows, one per caller over all folds.
WALK_FORWARD = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("fold", pa.int64()),  # null on pooled rows
        pa.field("caller_name", pa.string(), nullable=False),
        pa.field("train_from", pa.string(), nullable=False),  # YYYY-MM-DD, included
        pa.field("train_to", pa.string(), nullable=False),
        pa.field("test_from", pa.string(), nullable=False),
        pa.field("test_to", pa.string(), nullable=False),
        pa.field("objective", pa.string(), nullable=False),
        pa.field("policy_id", pa.string()),  # the choice; null when none met the constraints
        pa.field("policy_params", pa.string()),
        pa.field("folds", pa.int64(), nullable=False),  # folds with a choice
        pa.field("is_trades", pa.int64(), nullable=False),
        pa.field("is_score", pa.float64()),
        pa.field("is_stop_out_rate", pa.float64()),
        pa.field("oos_trades", pa.int64(), nullable=False),
        pa.field("oos_score", pa.float64()),
        pa.field("oos_stop_out_rate", pa.float64()),
        pa.field("baseline_policy_id", pa.string(), nullable=False),
        pa.field("baseline_oos_score", pa.float64()),
        pa.field("baseline_oos_trades", pa.int64(), nullable=False),
        pa.field("gap", pa.float64()),  # oos_score - is_score
        pa.field("holds_up", pa.bool_()),  # pooled rows only
        pa.field("verdict", pa.string()),  # pooled rows only
        # pooled rows only: the 90 % bootstrap interval of the pooled out-of-sample trades'
        # median return and win rate ("Intervals" in docs/semantics.md)
        *(f.with_name(f"oos_{f.name}") for f in INTERVAL_FIELDS),
    ]
)
# The `walk_forward` artifact: the engine's rows and the month partition (the month of a
# fold's first test day; a pooled row's is that of the run's last fold).
WALK_FORWARD_ARTIFACT = WALK_FORWARD.append(pa.field("month", pa.string(), nullable=False))

# One row per rejected input row, excluded call or data problem.
# level: "warning" (row skipped or call excluded, run goes on) or "error".
# stage: which step found it (alerts, paths, trades, ...).
# reason: a stable code (no_candles, invalid_entry_price, duplicate_call_id,
# duplicate_bar, invalid_price, high_below_low, ...); detail: free text.
ERRORS = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("stage", pa.string(), nullable=False),
        pa.field("level", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("call_id", pa.string()),
        pa.field("chain", pa.string()),
        pa.field("mint", pa.string()),
        pa.field("ts_ms", pa.int64()),
        pa.field("source", pa.string()),
        pa.field("detail", pa.string()),
    ]
)
# 1.1.0: the day partition the row belongs to (the day of the call, or of the
# first call of the run on that series for a candle problem).
ERRORS = ERRORS.append(pa.field("day", pa.string()))

ARTIFACT_SCHEMAS: dict[str, pa.Schema] = {
    "alerts": ALERTS,
    "paths": PATHS,
    "trades": TRADES_ARTIFACT,
    "summary": SUMMARY,
    "frontier": FRONTIER_ARTIFACT,
    "walk_forward": WALK_FORWARD_ARTIFACT,
    "errors": ERRORS,
}

# Where each artifact type lives inside a run directory (docs/compatibility.md).
ARTIFACT_FILES: dict[str, str] = {
    "alerts": "inputs/alerts.parquet",
    "paths": "truth/paths.parquet",
    "trades": "policy/trades.parquet",
    "summary": "results/summary.parquet",
    "frontier": "results/frontier.parquet",
    "walk_forward": "results/walk_forward.parquet",
    "errors": "errors/errors.parquet",
}

# Bump an artifact's version when its columns change; the catalog rejects
# run directories whose manifest names a version not listed here.
SCHEMA_VERSIONS: dict[str, str] = {
    "alerts": "1.0.0",
    "paths": "1.1.0",
    "trades": "1.1.0",
    "summary": "1.2.0",
    "frontier": "1.2.0",
    "walk_forward": "1.0.0",
    "errors": "1.1.0",
}
# 1.1.0: partition_keys lists every key per asset; artifacts name their
# partitions and parameter set; features; truth_sources.
# 1.2.0: planned_checks, the asset checks the run will record in checks/; data_fingerprint,
# calls_hash, candles_hash (what data the run read).
MANIFEST_VERSION = "1.2.0"
KNOWN_MANIFEST_VERSIONS = frozenset({"1.0.0", "1.1.0", MANIFEST_VERSION})

# Columns added after 1.0.0, by the version that added them. A file of an older
# version lacks them; readers get nulls (see `schema_for_version`).
ADDED_COLUMNS: dict[str, dict[str, tuple[str, ...]]] = {
    "paths": {"1.1.0": ("window_complete",)},
    "trades": {
        "1.1.0": (
            "ambiguous",
            "ambiguity_resolved",
            "optimistic_return_bps",
            "window_complete",
            "day",  # one file holds every day of a run
        )
    },
    "summary": {
        "1.1.0": (
            "ambiguous_trade_rate",
            "avg_optimistic_return_bps",
            "median_optimistic_return_bps",
            "window_incomplete_trades",
        ),
        "1.2.0": INTERVAL_COLUMNS,
    },
    "frontier": {
        "1.1.0": (
            "avg_optimistic_return_bps",
            "median_optimistic_return_bps",
            "ambiguous_trade_rate",
            "month",  # one file holds every month of a run
        ),
        "1.2.0": INTERVAL_COLUMNS,
    },
    "errors": {"1.1.0": ("day",)},
}
KNOWN_SCHEMA_VERSIONS: dict[str, frozenset[str]] = {
    name: frozenset({"1.0.0", version, *ADDED_COLUMNS.get(name, {})})
    for name, version in SCHEMA_VERSIONS.items()
}


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def schema_for_version(artifact_type: str, version: str) -> pa.Schema:
    """The columns a file of `version` must have: the current schema without the columns
    added in later versions."""
    schema = ARTIFACT_SCHEMAS[artifact_type]
    later = [
        name
        for added_in, names in ADDED_COLUMNS.get(artifact_type, {}).items()
        if _version_key(added_in) > _version_key(version)
        for name in names
    ]
    for name in later:
        schema = schema.remove(schema.get_field_index(name))
    return schema


schema_for = schema_for_version


def _day_of_ms(values: pa.ChunkedArray) -> pa.Array:
    ms = pc.cast(values, pa.int64())
    return pc.strftime(pc.cast(ms, pa.timestamp("ms", tz="UTC")), format="%Y-%m-%d")


def row_partition_keys(artifact_type: str, table: pa.Table) -> pa.Array:
    """The partition key of each row of an artifact file (day, day|policy or month)."""
    if artifact_type in ("alerts", "paths"):
        return _day_of_ms(table.column("alert_ts_ms"))
    if artifact_type in ("trades", "summary"):
        return pc.binary_join_element_wise(table.column("day"), table.column("policy_id"), "|")
    if artifact_type == "errors":
        return table.column("day")
    if artifact_type in ("frontier", "walk_forward"):
        return table.column("month")
    raise ValueError(f"unknown artifact type {artifact_type!r}")
