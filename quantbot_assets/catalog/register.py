"""Idempotent registration of run directories into the catalog.

Every function here takes the writer's connection; the caller holds the
writer lock (see `writer.catalog_writer`, or the Dagster pool of size 1).
Rows go in as Arrow tables (one statement per table, no row-at-a-time round
trips); `INSERT ... ON CONFLICT DO NOTHING` makes a re-sync a no-op.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from quantbot_assets.catalog.scan import iter_run_dir_candidates
from quantbot_assets.catalog.tables import (
    ARTIFACTS_COLUMNS,
    ARTIFACTS_TABLE,
    CHECKS_COLUMNS,
    CHECKS_TABLE,
    REJECTED_TABLE,
    RUNS_COLUMNS,
    RUNS_TABLE,
    ensure_tables,
)
from quantbot_assets.catalog.validate import (
    Rejection,
    RejectReason,
    ValidArtifact,
    ValidRun,
    parse_utc,
    printable,
    rejection,
    validate_run_dir,
)
from quantbot_assets.catalog.writer import database_file, publish_snapshot, snapshot_is_stale
from quantbot_assets.rundir import MANIFEST_FILE, json_dumps_canonical

CHUNK_RUNS = 5000


@dataclass
class SyncReport:
    registered: list[str] = field(default_factory=list)  # run ids newly catalogued
    skipped: int = 0  # already catalogued
    # (run dir relative to the runs root, "reason: detail")
    rejected: list[tuple[str, str]] = field(default_factory=list)
    incomplete: int = 0  # no marker yet, or checks still to run: not catalogued yet
    failed: list[str] = field(default_factory=list)  # run ids catalogued with status failed


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _rel(runs_root: Path, path: Path) -> str:
    return os.path.relpath(os.path.abspath(path), os.path.abspath(runs_root))


def _run_row(run: ValidRun, registered_at: datetime) -> dict[str, Any]:
    m = run.manifest
    policy_id = m.parameters.get("policy_id")
    return {
        "run_id": m.run_id,
        "run_type": m.run_type,
        "status": m.status,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "completed_at": run.completed_at,
        "git_commit": m.git_commit,
        "git_branch": m.git_branch,
        "git_dirty": m.git_dirty,
        "dataset_from": m.dataset.from_,
        "dataset_to": m.dataset.to,
        "dataset_interval": m.dataset.interval,
        "dataset_calls_count": m.dataset.calls_count,
        "parameters_json": json_dumps_canonical(m.parameters),
        "policy_id": policy_id if isinstance(policy_id, str) else None,
        "config_hash": m.config_hash,
        "job_name": m.job_name,
        "partition_keys_json": json_dumps_canonical(m.partition_keys),
        "manifest_schema_version": m.schema_version,
        "schema_versions_json": json_dumps_canonical(m.schema_versions),
        "artifact_count": len(run.artifacts),
        "timing_json": json_dumps_canonical(m.timing),
        "error": m.error,
        "marker": run.marker,
        "run_dir": str(run.run_dir),
        "manifest_path": str(run.run_dir / MANIFEST_FILE),
        "registered_at": registered_at,
        "checks_passed": None if run.checks is None else sum(c.passed for c in run.checks),
        "checks_failed": None if run.checks is None else sum(not c.passed for c in run.checks),
        "data_fingerprint": m.data_fingerprint,
    }


def _check_rows(run: ValidRun, registered_at: datetime) -> list[dict[str, Any]]:
    return [
        {
            "run_id": run.manifest.run_id,
            "check_name": c.check_name,
            "asset_key": c.asset_key,
            "outcome": c.outcome,
            "passed": c.passed,
            "severity": c.severity,
            "detail": c.detail,
            "metadata_json": json_dumps_canonical(c.metadata),
            "recorded_at": _recorded_at(c.recorded_at),
            "registered_at": registered_at,
        }
        for c in run.checks or ()
    ]


def _recorded_at(value: str) -> datetime | None:
    try:
        return parse_utc(value, "recorded_at")
    except Exception:  # a bad time in a check record is not worth refusing the run
        return None


def _arrow_schema(columns: tuple[str, ...], types: dict[str, pa.DataType]) -> pa.Schema:
    """Column order of the table; anything not listed in `types` is a string."""
    return pa.schema([(name, types.get(name, pa.string())) for name in columns])


RUNS_ARROW = _arrow_schema(
    RUNS_COLUMNS,
    {
        "created_at": pa.timestamp("us"),
        "started_at": pa.timestamp("us"),
        "completed_at": pa.timestamp("us"),
        "registered_at": pa.timestamp("us"),
        "git_dirty": pa.bool_(),
        "dataset_calls_count": pa.int64(),
        "artifact_count": pa.int64(),
        "checks_passed": pa.int64(),
        "checks_failed": pa.int64(),
    },
)
CHECKS_ARROW = _arrow_schema(
    CHECKS_COLUMNS,
    {"passed": pa.bool_(), "recorded_at": pa.timestamp("us"), "registered_at": pa.timestamp("us")},
)
ARTIFACTS_ARROW = _arrow_schema(
    ARTIFACTS_COLUMNS,
    {"rows": pa.int64(), "bytes": pa.int64(), "registered_at": pa.timestamp("us")},
)


def _artifact_row(run: ValidRun, art: ValidArtifact, registered_at: datetime) -> dict[str, Any]:
    return {
        "run_id": run.manifest.run_id,
        "artifact_type": art.artifact_type,
        "path": art.path,
        "relative_path": art.relative_path,
        "rows": art.rows,
        "bytes": art.bytes,
        "schema_version": art.schema_version,
        "asset_key": art.asset_key,
        "partition_key": art.partition_key,
        "registered_at": registered_at,
        "partition_keys_json": json.dumps(list(art.partition_keys)),
        "params_hash": art.params_hash,
    }


def _rows(
    accepted: list[ValidRun], registered_at: datetime, rejections: list[Rejection]
) -> tuple[list[ValidRun], pa.Table, pa.Table, pa.Table]:
    """The Arrow tables of `accepted`; a run whose values do not convert is rejected.

    One conversion for the whole chunk; only when it fails is each run
    converted alone to find the culprits (`invalid_row` rejections).
    """
    try:
        runs = pa.Table.from_pylist([_run_row(run, registered_at) for run in accepted], RUNS_ARROW)
        artifacts = pa.Table.from_pylist(
            [_artifact_row(run, art, registered_at) for run in accepted for art in run.artifacts],
            ARTIFACTS_ARROW,
        )
        checks = pa.Table.from_pylist(
            [row for run in accepted for row in _check_rows(run, registered_at)], CHECKS_ARROW
        )
        return accepted, runs, artifacts, checks
    except Exception:  # isolated below, run by run
        pass
    kept: list[ValidRun] = []
    run_parts: list[pa.Table] = [RUNS_ARROW.empty_table()]
    artifact_parts: list[pa.Table] = [ARTIFACTS_ARROW.empty_table()]
    check_parts: list[pa.Table] = [CHECKS_ARROW.empty_table()]
    for run in accepted:
        try:
            run_table = pa.Table.from_pylist([_run_row(run, registered_at)], RUNS_ARROW)
            artifact_table = pa.Table.from_pylist(
                [_artifact_row(run, art, registered_at) for art in run.artifacts], ARTIFACTS_ARROW
            )
            check_table = pa.Table.from_pylist(_check_rows(run, registered_at), CHECKS_ARROW)
        except Exception as exc:  # the run is refused with the cause
            rejections.append(
                rejection(
                    str(run.run_dir),
                    RejectReason.INVALID_ROW,
                    f"cannot store run.json values: {type(exc).__name__}: {str(exc)[:300]}",
                )
            )
            continue
        kept.append(run)
        run_parts.append(run_table)
        artifact_parts.append(artifact_table)
        check_parts.append(check_table)
    return (
        kept,
        pa.concat_tables(run_parts),
        pa.concat_tables(artifact_parts),
        pa.concat_tables(check_parts),
    )


def _insert(
    conn: duckdb.DuckDBPyConnection, table: str, columns: tuple[str, ...], data: pa.Table
) -> None:
    # Table and column names are module constants; the values travel as Arrow data.
    view = f"_incoming_{table}"
    conn.register(view, data)
    try:
        cols = ", ".join(columns)
        conn.execute(
            f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {view} ON CONFLICT DO NOTHING"
        )
    finally:
        conn.unregister(view)


def _existing(conn: duckdb.DuckDBPyConnection, column: str, values: list[str]) -> dict[str, str]:
    """{value of `column`: run_dir} for catalogued runs among `values`."""
    if not values:
        return {}
    rows = conn.execute(
        f"SELECT {column}, run_dir FROM {RUNS_TABLE} WHERE {column} IN (SELECT unnest(?::VARCHAR[]))",
        [values],
    ).fetchall()
    return {key: run_dir for key, run_dir in rows}


def _recorded_rejections(
    conn: duckdb.DuckDBPyConnection, run_dirs: list[str]
) -> dict[str, tuple[str, str]]:
    if not run_dirs:
        return {}
    rows = conn.execute(
        f"SELECT run_dir, reason, detail FROM {REJECTED_TABLE} WHERE run_dir IN (SELECT unnest(?::VARCHAR[]))",
        [run_dirs],
    ).fetchall()
    return {run_dir: (reason, detail) for run_dir, reason, detail in rows}


def _key(r: Rejection) -> str:
    # A directory name that is not UTF-8 cannot be stored as is.
    return printable(str(r.run_dir))


def _register_chunk(
    conn: duckdb.DuckDBPyConnection, runs_root: Path, todo: list[Path], report: SyncReport
) -> bool:
    """Validate and write one chunk in one transaction; True if the catalog changed."""
    valid: list[ValidRun] = []
    rejections: list[Rejection] = []
    for run_dir in todo:
        outcome = validate_run_dir(runs_root, run_dir)
        if outcome is None:
            report.incomplete += 1
        elif isinstance(outcome, Rejection):
            rejections.append(outcome)
        else:
            valid.append(outcome)

    # One run id must not be catalogued from two directories.
    taken = _existing(conn, "run_id", [run.manifest.run_id for run in valid])
    accepted: list[ValidRun] = []
    for run in valid:
        other = taken.get(run.manifest.run_id)
        if other is not None and other != str(run.run_dir):
            rejections.append(
                Rejection(
                    run.run_dir,
                    RejectReason.DUPLICATE_RUN_ID,
                    f"run id already catalogued from {other}",
                    run.manifest.run_id,
                    run.marker,
                )
            )
        else:
            taken[run.manifest.run_id] = str(run.run_dir)
            accepted.append(run)

    now = _now()
    accepted, runs, artifacts, checks = _rows(accepted, now, rejections)
    # Rejections already recorded with the same reason are left untouched, so a
    # re-sync writes nothing.
    recorded = _recorded_rejections(conn, [_key(r) for r in rejections])
    changed = [r for r in rejections if recorded.get(_key(r)) != (r.reason.value, r.detail)]
    conn.begin()
    try:
        if accepted:
            _insert(conn, RUNS_TABLE, RUNS_COLUMNS, runs)
            _insert(conn, ARTIFACTS_TABLE, ARTIFACTS_COLUMNS, artifacts)
            _insert(conn, CHECKS_TABLE, CHECKS_COLUMNS, checks)
            conn.execute(
                f"DELETE FROM {REJECTED_TABLE} WHERE run_dir IN (SELECT unnest(?::VARCHAR[]))",
                [[str(run.run_dir) for run in accepted]],
            )
        if changed:
            conn.executemany(
                f"""
                INSERT INTO {REJECTED_TABLE}
                    (run_dir, run_id, marker, reason, detail, first_seen_at, last_seen_at)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (run_dir) DO UPDATE SET
                    run_id = excluded.run_id, marker = excluded.marker, reason = excluded.reason,
                    detail = excluded.detail, last_seen_at = excluded.last_seen_at
                """,
                [
                    [_key(r), r.run_id, r.marker, r.reason.value, r.detail, now, now]
                    for r in changed
                ],
            )
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    report.registered += [run.manifest.run_id for run in accepted]
    report.failed += [run.manifest.run_id for run in accepted if run.manifest.status == "failed"]
    report.rejected += [(printable(_rel(runs_root, r.run_dir)), r.describe()) for r in rejections]
    return bool(accepted or changed)


def _register(
    conn: duckdb.DuckDBPyConnection, runs_root: Path, candidates: list[Path], known_dirs: set[str]
) -> SyncReport:
    report = SyncReport()
    todo = [run_dir for run_dir in candidates if str(run_dir) not in known_dirs]
    report.skipped = len(candidates) - len(todo)
    changed = False
    # Chunks bound memory and transaction size on a first sync of many runs.
    for start in range(0, len(todo), CHUNK_RUNS):
        changed |= _register_chunk(conn, runs_root, todo[start : start + CHUNK_RUNS], report)
    db_file = database_file(conn)
    if changed or (db_file is not None and snapshot_is_stale(db_file)):
        publish_snapshot(conn)
    return report


def register_runs(
    conn: duckdb.DuckDBPyConnection, runs_root: Path, run_dirs: Iterable[Path]
) -> SyncReport:
    """Validate and catalogue `run_dirs` (idempotent: catalogued runs are skipped)."""
    ensure_tables(conn)
    runs_root = Path(os.path.abspath(runs_root))
    candidates = [Path(os.path.abspath(d)) for d in run_dirs]
    known = _existing(conn, "run_dir", [str(d) for d in candidates])
    return _register(conn, runs_root, candidates, set(known))


def sync_catalog(conn: duckdb.DuckDBPyConnection, runs_root: Path) -> SyncReport:
    """Scan the whole runs root and catalogue what is new.

    Catalogued run directories are skipped without reading anything but their
    name; rejected ones are looked at again (they may have been repaired).
    """
    ensure_tables(conn)
    runs_root = Path(os.path.abspath(runs_root))
    known = {row[0] for row in conn.execute(f"SELECT run_dir FROM {RUNS_TABLE}").fetchall()}
    return _register(conn, runs_root, list(iter_run_dir_candidates(runs_root)), known)


def catalog_stats(conn: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Counts for the `--stats` block and asset metadata."""
    ensure_tables(conn)

    def counts(sql: str) -> dict[str, int]:
        return {key: int(n) for key, n in conn.execute(sql).fetchall()}

    by_status = counts(f"SELECT status, count(*) FROM {RUNS_TABLE} GROUP BY 1 ORDER BY 1")
    by_type = counts(f"SELECT run_type, count(*) FROM {RUNS_TABLE} GROUP BY 1 ORDER BY 1")
    artifacts = counts(
        f"SELECT artifact_type, count(*) FROM {ARTIFACTS_TABLE} GROUP BY 1 ORDER BY 1"
    )
    rejected = counts(f"SELECT reason, count(*) FROM {REJECTED_TABLE} GROUP BY 1 ORDER BY 1")
    return {
        "total_runs": sum(by_status.values()),
        "completed": by_status.get("completed", 0),
        "failed": by_status.get("failed", 0),
        "runs_by_type": by_type,
        "total_artifacts": sum(artifacts.values()),
        "artifacts_by_type": artifacts,
        "rejected": sum(rejected.values()),
        "rejected_by_reason": rejected,
    }


def _counts_text(counts: dict[str, int]) -> str:
    if not counts:
        return "{}"
    return "{ " + ", ".join(f"{json.dumps(k)}: {v}" for k, v in counts.items()) + " }"


def format_stats(stats: dict[str, Any]) -> str:
    """The earlier system's `Catalog Statistics` block (docs/compatibility.md)."""
    return "\n".join(
        [
            "Catalog Statistics:",
            f"  Total runs: {stats['total_runs']}",
            f"  Completed: {stats['completed']}",
            f"  Failed: {stats['failed']}",
            f"  By type: {_counts_text(stats['runs_by_type'])}",
            f"  Total artifacts: {stats['total_artifacts']}",
            f"  By type: {_counts_text(stats['artifacts_by_type'])}",
            f"  Rejected: {stats['rejected']}",
        ]
    )
