"""Golden exports: the latest catalogued version of every partition, one file per type.

`data/exports/<artifact type>.parquet` holds, for each partition key, the
rows of the newest completed run that wrote it (newest by `completed_at`,
then `created_at`, then run id), so analysts can `read_parquet` one file.
`_export_status.json` says when, from which runs, and how many rows. Every
file is renamed into place, and a type whose selection did not change since
the last refresh is not rewritten.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import defaultdict
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from pydantic import BaseModel, Field, ValidationError

from quantbot_assets.catalog.tables import ARTIFACTS_TABLE, RUNS_TABLE, ensure_tables
from quantbot_assets.rundir import atomic_write_bytes, atomic_write_parquet, utc_now_iso
from quantbot_assets.schemas import ARTIFACT_SCHEMAS

STATUS_FILE = "_export_status.json"

_LATEST_SQL = f"""
    SELECT a.artifact_type, coalesce(a.partition_key, '') AS partition_key, a.run_id, a.path
    FROM {ARTIFACTS_TABLE} a JOIN {RUNS_TABLE} r USING (run_id)
    WHERE r.status = 'completed'
    QUALIFY row_number() OVER (
        PARTITION BY a.artifact_type, coalesce(a.partition_key, '')
        ORDER BY r.completed_at DESC NULLS LAST, r.created_at DESC, r.run_id DESC
    ) = 1
    ORDER BY 1, 2
"""


class ExportProblem(BaseModel):
    artifact_type: str
    partition_key: str
    run_id: str
    path: str
    error: str


class ExportFile(BaseModel):
    file: str  # relative to the exports directory
    rows: int
    partitions: int
    runs: list[str]  # run ids the rows come from
    source_hash: str  # of the (partition, run, path) selection: unchanged -> not rewritten


class ExportStatus(BaseModel):
    generated_at: str
    files: dict[str, ExportFile]
    problems: list[ExportProblem] = Field(default_factory=list)


def export_path(exports_dir: Path, artifact_type: str) -> Path:
    return Path(exports_dir) / f"{artifact_type}.parquet"


def read_export_status(exports_dir: Path) -> ExportStatus | None:
    path = Path(exports_dir) / STATUS_FILE
    try:
        return ExportStatus.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return None
    except ValidationError:
        return None  # an unreadable status only costs a full rewrite


def _problem(
    artifact_type: str, partition_key: str, run_id: str, path: str, error: str
) -> ExportProblem:
    return ExportProblem(
        artifact_type=artifact_type,
        partition_key=partition_key,
        run_id=run_id,
        path=path,
        error=error,
    )


def refresh_exports(conn: duckdb.DuckDBPyConnection, exports_dir: Path) -> ExportStatus:
    """Rewrite the golden exports from the catalog behind `conn`."""
    ensure_tables(conn)
    exports_dir = Path(exports_dir)
    exports_dir.mkdir(parents=True, exist_ok=True)
    selection: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for artifact_type, partition_key, run_id, path in conn.execute(_LATEST_SQL).fetchall():
        selection[artifact_type].append((partition_key, run_id, path))
    previous = read_export_status(exports_dir)

    files: dict[str, ExportFile] = {}
    problems: list[ExportProblem] = []
    for artifact_type, schema in ARTIFACT_SCHEMAS.items():
        chosen = selection.get(artifact_type, [])
        source_hash = hashlib.sha256(json.dumps(chosen).encode()).hexdigest()
        out = export_path(exports_dir, artifact_type)
        kept = previous.files.get(artifact_type) if previous else None
        if kept is not None and kept.source_hash == source_hash and out.exists():
            files[artifact_type] = kept
            problems += (
                [p for p in previous.problems if p.artifact_type == artifact_type]
                if previous
                else []
            )
            continue
        readable: list[tuple[str, str, str]] = []
        for partition_key, run_id, path in chosen:
            if os.path.isfile(path):
                readable.append((partition_key, run_id, path))
            else:
                problems.append(
                    _problem(artifact_type, partition_key, run_id, path, "file is missing")
                )
        tables = [schema.empty_table()]
        try:
            # One multi-threaded scan of every chosen file.
            paths = [path for _, _, path in readable]
            tables.append(ds.dataset(paths, schema=schema, format="parquet").to_table())
        except (OSError, pa.ArrowException):
            # Some file is unreadable: read them one by one to name it.
            for partition_key, run_id, path in list(readable):
                try:
                    tables.append(pq.read_table(path, columns=schema.names).cast(schema))
                except (OSError, pa.ArrowException) as exc:
                    readable.remove((partition_key, run_id, path))
                    problems.append(_problem(artifact_type, partition_key, run_id, path, str(exc)))
        runs = {run_id for _, run_id, _ in readable}
        table = pa.concat_tables(tables)
        atomic_write_parquet(table, out)
        files[artifact_type] = ExportFile(
            file=out.name,
            rows=table.num_rows,
            partitions=len(chosen),
            runs=sorted(runs),
            source_hash=source_hash,
        )
    status = ExportStatus(generated_at=utc_now_iso(), files=files, problems=problems)
    atomic_write_bytes(exports_dir / STATUS_FILE, status.model_dump_json(indent=2).encode())
    return status
