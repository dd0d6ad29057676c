"""DDL of the catalog database: runs, artifacts, check results, rejected run directories.

Columns follow the earlier system's `backtest_runs_catalog` / `backtest_artifacts_catalog`
(docs/compatibility.md)
plus what Dagster knows (job name, partition keys, policy id). Timestamps are
naive `TIMESTAMP` values in UTC (no time-zone type: fetching `TIMESTAMPTZ`
drags pytz into every reader).

The seeds' artifact-bus names are views over the same tables, in a schema
`catalog`: `catalog.runs_d` and `catalog.artifacts_f`, each with a `producer`
(the Dagster job that wrote the run, else `quantbot_assets`) and an
`ingested_at` (when the catalog registered it) column.
"""

from __future__ import annotations

import duckdb

RUNS_TABLE = "backtest_runs_catalog"
ARTIFACTS_TABLE = "backtest_artifacts_catalog"
REJECTED_TABLE = "backtest_rejected_runs"
CHECKS_TABLE = "backtest_check_results"
BUS_SCHEMA = "catalog"
RUNS_VIEW = f"{BUS_SCHEMA}.runs_d"
ARTIFACTS_VIEW = f"{BUS_SCHEMA}.artifacts_f"
DEFAULT_PRODUCER = "quantbot_assets"

# Column order matters: registration inserts Arrow tables built in this order.
RUNS_COLUMNS: tuple[str, ...] = (
    "run_id",
    "run_type",
    "status",
    "created_at",
    "started_at",
    "completed_at",
    "git_commit",
    "git_branch",
    "git_dirty",
    "dataset_from",
    "dataset_to",
    "dataset_interval",
    "dataset_calls_count",
    "parameters_json",
    "policy_id",
    "config_hash",
    "job_name",
    "partition_keys_json",
    "manifest_schema_version",
    "schema_versions_json",
    "artifact_count",
    "timing_json",
    "error",
    "marker",
    "run_dir",
    "manifest_path",
    "registered_at",
    # Added later (ALTER TABLE appends; keep the order): run.json 1.2.0's content hash of
    # the data the run read (runs with equal config_hash and data_fingerprint computed the
    # same thing: `quantbot backtest list --same-as RUN_ID`), and the run's asset checks.
    "data_fingerprint",
    "checks_passed",
    "checks_failed",
)

ARTIFACTS_COLUMNS: tuple[str, ...] = (
    "run_id",
    "artifact_type",
    "path",
    "relative_path",
    "rows",
    "bytes",
    "schema_version",
    "asset_key",
    "partition_key",
    "registered_at",
    "partition_keys_json",
    "params_hash",
)

CHECKS_COLUMNS: tuple[str, ...] = (
    "run_id",
    "check_name",
    "asset_key",
    "outcome",
    "passed",
    "severity",
    "detail",
    "metadata_json",
    "recorded_at",
    "registered_at",
)

DDL: tuple[str, ...] = (
    f"""
    CREATE TABLE IF NOT EXISTS {RUNS_TABLE} (
        run_id VARCHAR PRIMARY KEY,
        run_type VARCHAR NOT NULL,
        status VARCHAR NOT NULL,
        created_at TIMESTAMP NOT NULL,
        started_at TIMESTAMP,
        completed_at TIMESTAMP,
        git_commit VARCHAR,
        git_branch VARCHAR,
        git_dirty BOOLEAN,
        dataset_from VARCHAR,
        dataset_to VARCHAR,
        dataset_interval VARCHAR,
        dataset_calls_count BIGINT,
        parameters_json VARCHAR NOT NULL,
        policy_id VARCHAR,
        config_hash VARCHAR,
        job_name VARCHAR,
        partition_keys_json VARCHAR NOT NULL,
        manifest_schema_version VARCHAR NOT NULL,
        schema_versions_json VARCHAR NOT NULL,
        artifact_count BIGINT NOT NULL,
        timing_json VARCHAR NOT NULL,
        error VARCHAR,
        marker VARCHAR NOT NULL,
        run_dir VARCHAR NOT NULL,
        manifest_path VARCHAR NOT NULL,
        registered_at TIMESTAMP NOT NULL,
        data_fingerprint VARCHAR
    )
    """,
    # Catalogs created before run.json recorded a data fingerprint.
    f"ALTER TABLE {RUNS_TABLE} ADD COLUMN IF NOT EXISTS data_fingerprint VARCHAR",
    f"""
    CREATE TABLE IF NOT EXISTS {ARTIFACTS_TABLE} (
        run_id VARCHAR NOT NULL,
        artifact_type VARCHAR NOT NULL,
        path VARCHAR NOT NULL,
        relative_path VARCHAR NOT NULL,
        rows BIGINT NOT NULL,
        bytes BIGINT NOT NULL,
        schema_version VARCHAR NOT NULL,
        asset_key VARCHAR,
        partition_key VARCHAR,
        registered_at TIMESTAMP NOT NULL,
        partition_keys_json VARCHAR,
        params_hash VARCHAR,
        PRIMARY KEY (run_id, artifact_type)
    )
    """,
    # Catalogs created before an artifact could hold several partitions.
    f"ALTER TABLE {ARTIFACTS_TABLE} ADD COLUMN IF NOT EXISTS partition_keys_json VARCHAR",
    f"ALTER TABLE {ARTIFACTS_TABLE} ADD COLUMN IF NOT EXISTS params_hash VARCHAR",
    # Catalogs created before runs recorded their asset checks (NULL: not recorded).
    f"ALTER TABLE {RUNS_TABLE} ADD COLUMN IF NOT EXISTS checks_passed BIGINT",
    f"ALTER TABLE {RUNS_TABLE} ADD COLUMN IF NOT EXISTS checks_failed BIGINT",
    f"""
    CREATE TABLE IF NOT EXISTS {CHECKS_TABLE} (
        run_id VARCHAR NOT NULL,
        check_name VARCHAR NOT NULL,
        asset_key VARCHAR,
        outcome VARCHAR NOT NULL,
        passed BOOLEAN NOT NULL,
        severity VARCHAR,
        detail VARCHAR,
        metadata_json VARCHAR NOT NULL,
        recorded_at TIMESTAMP,
        registered_at TIMESTAMP NOT NULL,
        PRIMARY KEY (run_id, check_name)
    )
    """,
    f"""
    CREATE TABLE IF NOT EXISTS {REJECTED_TABLE} (
        run_dir VARCHAR PRIMARY KEY,
        run_id VARCHAR,
        marker VARCHAR,
        reason VARCHAR NOT NULL,
        detail VARCHAR NOT NULL,
        first_seen_at TIMESTAMP NOT NULL,
        last_seen_at TIMESTAMP NOT NULL
    )
    """,
)


def _view_ddl(schema: str) -> tuple[str, ...]:
    # Views name their tables with the schema only, so they resolve in any copy
    # of the file (the read snapshot has another database name).
    return (
        f"""
    CREATE VIEW IF NOT EXISTS {schema}.runs_d AS
    SELECT r.*, coalesce(r.job_name, '{DEFAULT_PRODUCER}') AS producer,
        r.registered_at AS ingested_at
    FROM main.{RUNS_TABLE} r
    """,
        f"""
    CREATE VIEW IF NOT EXISTS {schema}.artifacts_f AS
    SELECT a.*, coalesce(r.job_name, '{DEFAULT_PRODUCER}') AS producer,
        a.registered_at AS ingested_at
    FROM main.{ARTIFACTS_TABLE} a LEFT JOIN main.{RUNS_TABLE} r USING (run_id)
    """,
    )


def ensure_tables(conn: duckdb.DuckDBPyConnection) -> None:
    """Create the catalog tables if they do not exist (safe to call on every write)."""
    for statement in DDL:
        conn.execute(statement)
    [database] = conn.execute("SELECT current_database()").fetchone() or ("",)
    if database == BUS_SCHEMA:
        # A file named catalog.duckdb is itself the catalog `catalog`: a schema
        # of that name would make `catalog.runs_d` ambiguous, while views in
        # `main` are found under that very name.
        schema = "main"
    else:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {BUS_SCHEMA}")
        schema = BUS_SCHEMA
    for statement in _view_ddl(schema):
        conn.execute(statement)
