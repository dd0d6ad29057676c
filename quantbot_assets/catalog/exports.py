"""Golden exports: the latest catalogued version of every partition, one file per type.

`data/exports/<artifact type>.parquet` holds, for each partition key, the
rows of the newest completed run that wrote it (newest by `completed_at`,
then `created_at`, then run id), so analysts can `read_parquet` one file.
`_export_status.json` says when, from which runs, and how many rows. Every
file is renamed into place, and a type whose selection did not change since
the last refresh is not rewritten.

Every artifact path is checked again just before it is read: it must be the
catalogued run directory plus the catalogued relative path, inside the runs
root (the run directory's grandparent), with no symbolic link on the way and
a regular file at the end. A file swapped for a symlink after it was
catalogued is reported as a problem, never read.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections import defaultdict
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from pydantic import BaseModel, Field, ValidationError

from quantbot_assets.catalog.tables import ARTIFACTS_TABLE, RUNS_TABLE, ensure_tables
from quantbot_assets.catalog.writer import publish_bytes, publish_parquet
from quantbot_assets.rundir import utc_now_iso
from quantbot_assets.schemas import ARTIFACT_SCHEMAS

STATUS_FILE = "_export_status.json"

_LATEST_SQL = f"""
    SELECT a.artifact_type, coalesce(a.partition_key, '') AS partition_key, a.run_id, a.path,
        r.run_dir, a.relative_path
    FROM {ARTIFACTS_TABLE} a JOIN {RUNS_TABLE} r USING (run_id)
    WHERE r.status = 'completed'
    QUALIFY row_number() OVER (
        PARTITION BY a.artifact_type, coalesce(a.partition_key, '')
        -- A completion time later than a day after the catalog saw the run cannot be
        -- true (catalogs older than the timestamp range check may hold one): it ranks
        -- as unknown rather than winning forever.
        ORDER BY CASE WHEN r.completed_at <= r.registered_at + INTERVAL 1 DAY
            THEN r.completed_at END DESC NULLS LAST,
            r.created_at DESC, r.run_id DESC
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


class _PathCheck:
    """Re-checks artifact paths at read time, caching the directories already seen."""

    def __init__(self) -> None:
        self._dirs: dict[str, str | None] = {}

    def _lstat_problem(self, path: str, want_dir: bool) -> str | None:
        try:
            info = os.lstat(path)
        except OSError:
            return "file is missing"
        if stat.S_ISLNK(info.st_mode):
            return f"{path} is a symbolic link"
        ok = stat.S_ISDIR(info.st_mode) if want_dir else stat.S_ISREG(info.st_mode)
        if not ok:
            return f"{path} is not a {'directory' if want_dir else 'regular file'}"
        return None

    def _dir_problem(self, path: str) -> str | None:
        if path not in self._dirs:
            self._dirs[path] = self._lstat_problem(path, want_dir=True)
        return self._dirs[path]

    def problem(self, path: str, run_dir: str, relative_path: str) -> str | None:
        """Why `path` must not be read (None: a regular file inside the runs root)."""
        parts = relative_path.split("/")
        if (
            not os.path.isabs(run_dir)
            or os.path.normpath(run_dir) != run_dir
            or not relative_path
            or relative_path.startswith("/")
            or "\\" in relative_path
            or any(part in ("", ".", "..") for part in parts)
            or path != os.path.join(run_dir, *parts)
        ):
            return "path is not the run directory plus a plain relative path"
        month = os.path.dirname(run_dir)
        current = run_dir
        for directory in (month, run_dir):
            found = self._dir_problem(directory)
            if found is not None:
                return found
        for part in parts[:-1]:
            current = os.path.join(current, part)
            found = self._dir_problem(current)
            if found is not None:
                return found
        return self._lstat_problem(path, want_dir=False)


def refresh_exports(conn: duckdb.DuckDBPyConnection, exports_dir: Path) -> ExportStatus:
    """Rewrite the golden exports from the catalog behind `conn`."""
    ensure_tables(conn)
    exports_dir = Path(exports_dir)
    exports_dir.mkdir(parents=True, exist_ok=True)
    selection: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    locations: dict[str, tuple[str, str]] = {}  # path -> (run dir, relative path)
    for artifact_type, partition_key, run_id, path, run_dir, relative_path in conn.execute(
        _LATEST_SQL
    ).fetchall():
        selection[artifact_type].append((partition_key, run_id, path))
        locations[path] = (run_dir, relative_path)
    checker = _PathCheck()
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
            found = checker.problem(path, *locations[path])
            if found is None:
                readable.append((partition_key, run_id, path))
            else:
                problems.append(_problem(artifact_type, partition_key, run_id, path, found))
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
        publish_parquet(out, table)
        files[artifact_type] = ExportFile(
            file=out.name,
            rows=table.num_rows,
            partitions=len(chosen),
            runs=sorted(runs),
            source_hash=source_hash,
        )
    status = ExportStatus(generated_at=utc_now_iso(), files=files, problems=problems)
    publish_bytes(exports_dir / STATUS_FILE, status.model_dump_json(indent=2).encode())
    return status
