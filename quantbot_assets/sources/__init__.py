"""Calls and candles from DuckDB, Parquet or CSV: `access` (kinds of source, opening them,
structural checks), `calls` (loading and validating calls), `candles` (loading bars)."""
