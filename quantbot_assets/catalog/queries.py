"""The read side of the catalog: short read-only connections that never wait on a writer.

Readers open `<db>.snapshot` (published by the writer after each committed
write, see `writer.py`), falling back to the database itself only when no
snapshot exists yet; both opens retry with backoff on DuckDB's lock error.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import get_args

import duckdb
import pandas as pd

from quantbot_assets.catalog.tables import ARTIFACTS_TABLE, REJECTED_TABLE, RUNS_TABLE
from quantbot_assets.catalog.writer import retry_on_duckdb_lock, snapshot_path
from quantbot_assets.errors import DataError
from quantbot_assets.rundir import RunType
from quantbot_assets.schemas import ARTIFACT_SCHEMAS

READ_RETRY_S = 120.0
RUN_TYPES: tuple[str, ...] = get_args(RunType)
RUN_STATUSES: tuple[str, ...] = ("completed", "failed")  # the only statuses ever catalogued

QUERY_COLUMNS = (
    "run_id",
    "run_type",
    "status",
    "created_at",
    "completed_at",
    "policy_id",
    "job_name",
    "partition_keys_json",
    "artifact_count",
    "run_dir",
    "error",
    "config_hash",
    "data_fingerprint",
)


class CatalogNotFoundError(DataError, FileNotFoundError):
    """No catalog database at the given path."""


@contextmanager
def catalog_reader(db_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short read-only connection to the newest published state of the catalog."""
    db_path = Path(db_path)
    snapshot = snapshot_path(db_path)
    source = snapshot if snapshot.exists() else db_path
    if not source.exists():
        raise CatalogNotFoundError(
            f"no catalog at {db_path} (run `quantbot backtest catalog-sync` first)"
        )
    conn = retry_on_duckdb_lock(lambda: duckdb.connect(str(source), read_only=True), READ_RETRY_S)
    try:
        yield conn
    finally:
        conn.close()


def _parse_day(value: str | date | None, option: str) -> date | None:
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{option} {value!r} is not a date (YYYY-MM-DD)") from None


def _check_choice(value: str | None, choices: tuple[str, ...], option: str) -> None:
    if value is not None and value not in choices:
        raise ValueError(f"unknown {option} {value!r} (expected one of: {', '.join(choices)})")


def query_runs(
    db_path: Path,
    *,
    limit: int = 100,
    run_type: str | None = None,
    status: str | None = None,
    from_date: str | date | None = None,
    to_date: str | date | None = None,
    same_as: str | None = None,
) -> pd.DataFrame:
    """Catalogued runs, newest first; dates filter `created_at` (UTC days, both inclusive);
    `same_as` keeps the runs with the `config_hash` and `data_fingerprint` of that run (itself
    included; none when either is unknown)."""
    _check_choice(run_type, RUN_TYPES, "run type")
    _check_choice(status, RUN_STATUSES, "status")
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    start = _parse_day(from_date, "from date")
    end = _parse_day(to_date, "to date")
    clauses: list[str] = []
    params: list[object] = []
    if run_type is not None:
        clauses.append("run_type = ?")
        params.append(run_type)
    if status is not None:
        clauses.append("status = ?")
        params.append(status)
    if start is not None:
        clauses.append("created_at >= ?")
        params.append(start)
    if end is not None:
        clauses.append("created_at < ?")
        params.append(end + timedelta(days=1))
    if same_as is not None:
        for column in ("config_hash", "data_fingerprint"):
            clauses.append(f"{column} = (SELECT {column} FROM {RUNS_TABLE} WHERE run_id = ?)")
            params.append(same_as)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    sql = (
        f"SELECT {', '.join(QUERY_COLUMNS)} FROM {RUNS_TABLE} {where} "
        "ORDER BY created_at DESC, run_id LIMIT ?"
    )
    with catalog_reader(db_path) as conn:
        return conn.execute(sql, [*params, limit]).df()


def artifact_path(db_path: Path, run_id: str, artifact_type: str) -> Path | None:
    """Where run `run_id` keeps its `artifact_type` file (None if not catalogued)."""
    _check_choice(artifact_type, tuple(ARTIFACT_SCHEMAS), "artifact type")
    with catalog_reader(db_path) as conn:
        row = conn.execute(
            f"SELECT path FROM {ARTIFACTS_TABLE} WHERE run_id = ? AND artifact_type = ?",
            [run_id, artifact_type],
        ).fetchone()
    return Path(row[0]) if row else None


def rejected_runs(db_path: Path) -> pd.DataFrame:
    """The rejected run directories with their reasons, most recent first."""
    with catalog_reader(db_path) as conn:
        return conn.execute(
            f"SELECT run_dir, run_id, marker, reason, detail, first_seen_at, last_seen_at "
            f"FROM {REJECTED_TABLE} ORDER BY last_seen_at DESC, run_dir"
        ).df()
