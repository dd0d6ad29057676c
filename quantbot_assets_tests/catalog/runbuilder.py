"""Build small run directories the way the IO manager writes them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from quantbot_assets.rundir import (
    FAILED_MARKER,
    SUCCESS_MARKER,
    ArtifactEntry,
    CheckRecord,
    DatasetWindow,
    RunManifest,
    atomic_write_parquet,
    run_dir_path,
    write_check_record,
    write_manifest,
    write_marker,
)
from quantbot_assets.schemas import ARTIFACT_FILES, ARTIFACT_SCHEMAS, SCHEMA_VERSIONS

DAY_MS = 86_400_000


def paths_table(
    run_id: str, day: str, callers: dict[str, list[tuple[bool, bool, bool, float, float]]]
) -> pa.Table:
    """`paths` rows: per caller a list of (hit_2x, hit_3x, hit_4x, peak_multiple, dd_bps)."""
    t0 = int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp() * 1000)
    rows = []
    n = 0
    for caller, calls in callers.items():
        for hit2, hit3, hit4, peak, dd in calls:
            n += 1
            rows.append(
                {
                    "run_id": run_id,
                    "call_id": f"{day}-{caller}-{n}",
                    "caller_name": caller,
                    "mint": f"mint{n}",
                    "chain": "solana",
                    "interval": "1m",
                    "alert_ts_ms": t0 + n * 1000,
                    "t0_ms": t0 + n * 1000 + 60_000,
                    "p0": 1.0,
                    "hit_2x": hit2,
                    "t_2x_ms": t0 + n * 1000 + 600_000 if hit2 else None,
                    "hit_3x": hit3,
                    "t_3x_ms": t0 + n * 1000 + 900_000 if hit3 else None,
                    "hit_4x": hit4,
                    "t_4x_ms": t0 + n * 1000 + 1_200_000 if hit4 else None,
                    "peak_multiple": peak,
                    "peak_ts_ms": t0 + n * 1000 + 1_500_000,
                    "dd_bps": dd,
                    "dd_to_2x_bps": dd if hit2 else None,
                    "alert_to_activity_ms": None,
                    "bars": 100,
                }
            )
    return pa.Table.from_pylist(rows, ARTIFACT_SCHEMAS["paths"])


def trades_table(
    run_id: str, policy_id: str, returns: list[tuple[float, bool, float | None]]
) -> pa.Table:
    """`trades` rows from (realized_return_bps, stop_out, tail_capture)."""
    rows = [
        {
            "run_id": run_id,
            "policy_id": policy_id,
            "call_id": f"{policy_id}-{i}",
            "caller_name": "alice",
            "mint": f"mint{i}",
            "chain": "solana",
            "entry_ts_ms": 1_000,
            "entry_px": 1.0,
            "exit_ts_ms": 2_000,
            "exit_px": 1.0 + ret / 10_000,
            "exit_reason": "stop_loss" if stop else "take_profit",
            "realized_return_bps": ret,
            "stop_out": stop,
            "max_adverse_excursion_bps": -100.0,
            "time_exposed_ms": 1_000,
            "tail_capture": tail,
            "day": "2024-01-03",
        }
        for i, (ret, stop, tail) in enumerate(returns)
    ]
    return pa.Table.from_pylist(rows, ARTIFACT_SCHEMAS["trades"])


def empty_table(artifact_type: str) -> pa.Table:
    return ARTIFACT_SCHEMAS[artifact_type].empty_table()


def build_run(
    runs_root: Path,
    run_id: str,
    tables: dict[str, pa.Table],
    *,
    created: datetime = datetime(2024, 1, 5, 12, 0, tzinfo=UTC),
    completed: datetime | None = None,
    run_type: str = "path-only",
    status: str = "completed",
    partition_key: str | None = "2024-01-03",
    parameters: dict | None = None,
    marker: str | None = SUCCESS_MARKER,
    error: str | None = None,
    schema_versions: dict[str, str] | None = None,
    planned_checks: list[str] | None = None,
    check_outcomes: dict[str, str] | None = None,
    config_hash: str = "cfg",
    data_fingerprint: str | None = None,
) -> Path:
    """One run directory with `tables` as artifacts, a manifest and a marker.
    `schema_versions`: per artifact type, the version the manifest names (default: current).
    `planned_checks`: the manifest's (None: a manifest before 1.2.0); `check_outcomes`:
    check name -> outcome recorded in checks/."""
    versions = {**SCHEMA_VERSIONS, **(schema_versions or {})}
    run_dir = run_dir_path(runs_root, run_id, created)
    artifacts = {}
    for artifact_type, table in tables.items():
        rel = ARTIFACT_FILES[artifact_type]
        size = atomic_write_parquet(table, run_dir / rel)
        artifacts[artifact_type] = ArtifactEntry(
            path=rel,
            rows=table.num_rows,
            bytes=size,
            schema_version=versions[artifact_type],
            asset_key=artifact_type,
            partition_key=partition_key,
        )
    iso = created.isoformat().replace("+00:00", "Z")
    manifest = RunManifest(
        run_id=run_id,
        run_type=run_type,  # type: ignore[arg-type]
        status=status,  # type: ignore[arg-type]
        created_at=iso,
        started_at=iso,
        completed_at=(completed or created).isoformat().replace("+00:00", "Z"),
        git_commit="abc123",
        git_branch="main",
        git_dirty=False,
        dataset=DatasetWindow.model_validate(
            {"from": "2024-01-03", "to": "2024-01-04", "interval": "1m", "calls_count": 3}
        ),
        parameters=parameters or {},
        config_hash=config_hash,
        data_fingerprint=data_fingerprint,
        job_name="backtest_job",
        partition_keys={name: [partition_key] for name in tables} if partition_key else {},
        planned_artifacts=sorted(tables),
        schema_versions={name: versions[name] for name in tables},
        artifacts=artifacts,
        error=error,
        planned_checks=planned_checks,
    )
    write_manifest(run_dir, manifest)
    for name, outcome in (check_outcomes or {}).items():
        write_check_record(
            run_dir,
            CheckRecord(
                check_name=name,
                asset_key="paths",
                outcome=outcome,  # type: ignore[arg-type]
                passed=outcome == "passed",
                metadata={"rows": "3"},
                recorded_at=iso,
            ),
        )
    if marker is not None:
        write_marker(run_dir, marker)
    return run_dir


def build_failed_run(runs_root: Path, run_id: str, **kwargs) -> Path:
    return build_run(
        runs_root, run_id, {}, status="failed", marker=FAILED_MARKER, error="boom", **kwargs
    )
