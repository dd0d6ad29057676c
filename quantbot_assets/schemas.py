"""Arrow schemas of every artifact type, and their versions.

One place for column names and types: the engine produces DataFrames with
these columns, the IO manager validates and writes them with these schemas,
and the catalog refuses run directories whose manifest names a version it
does not know.
"""

from __future__ import annotations

import pyarrow as pa

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
    ]
)

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
        pa.field("meets_constraints", pa.bool_(), nullable=False),
        pa.field("pareto", pa.bool_(), nullable=False),
        pa.field("rank", pa.int64()),
    ]
)

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

ARTIFACT_SCHEMAS: dict[str, pa.Schema] = {
    "alerts": ALERTS,
    "paths": PATHS,
    "trades": TRADES,
    "summary": SUMMARY,
    "frontier": FRONTIER,
    "errors": ERRORS,
}

# Where each artifact type lives inside a run directory (docs/compatibility.md).
ARTIFACT_FILES: dict[str, str] = {
    "alerts": "inputs/alerts.parquet",
    "paths": "truth/paths.parquet",
    "trades": "policy/trades.parquet",
    "summary": "results/summary.parquet",
    "frontier": "results/frontier.parquet",
    "errors": "errors/errors.parquet",
}

# Bump an artifact's version when its columns change; the catalog rejects
# run directories whose manifest names a version not listed here.
SCHEMA_VERSIONS: dict[str, str] = {name: "1.0.0" for name in ARTIFACT_SCHEMAS}
MANIFEST_VERSION = "1.0.0"
KNOWN_SCHEMA_VERSIONS: dict[str, frozenset[str]] = {
    name: frozenset({version}) for name, version in SCHEMA_VERSIONS.items()
}
