"""The run catalog: DuckDB tables of finished run directories, golden exports, leaderboards.

No Dagster here: the catalog assets and the marker sensor are thin wrappers
over these functions.
"""
