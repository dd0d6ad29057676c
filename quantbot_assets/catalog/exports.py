"""Golden exports: the latest catalogued version of every partition, one file per type.

`data/exports/<artifact type>.parquet` holds, for each partition key, the
rows of the newest completed run that wrote it (newest by `completed_at`,
then `created_at`, then run id), so analysts can `read_parquet` one file.
`_export_status.json` says when, from which runs, and how many rows. Every
file is renamed into place, and a type whose selection did not change since
the last refresh is not rewritten.

Every artifact is read through a descriptor opened component by component
from the runs root (the run directory's grandparent): the path must be the
catalogued run directory plus the catalogued relative path, no symbolic link
is followed on the way and the end must be a regular file. The read uses
that descriptor, never the name again, so a file or folder swapped for a
symlink after it was catalogued (even during the refresh) is reported as a
problem, never read.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import defaultdict
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from pydantic import BaseModel, Field, ValidationError

from quantbot_assets.catalog.safe_open import UnsafePath, open_below, reopen_path
from quantbot_assets.catalog.tables import ARTIFACTS_TABLE, RUNS_TABLE, ensure_tables
from quantbot_assets.catalog.writer import publish_bytes, publish_parquet
from quantbot_assets.params import (
    TRUTH_ARTIFACTS,
    canonical_json,
    keys_for,
    params_hash,
    subset,
)
from quantbot_assets.rundir import utc_now_iso
from quantbot_assets.schemas import ARTIFACT_SCHEMAS, row_partition_keys

STATUS_FILE = "_export_status.json"

# Every (artifact type, partition, parameter set) of a completed run; an
# artifact written before manifests listed several partitions names one (or none).
_LATEST_SQL = f"""
    WITH parts AS (
        SELECT a.artifact_type, a.run_id, a.path, r.run_dir, a.relative_path,
               coalesce(a.params_hash, '') AS params_hash,
               CASE WHEN a.partition_keys_json IS NULL OR a.partition_keys_json = '[]'
                    THEN [coalesce(a.partition_key, '')]
                    ELSE from_json(a.partition_keys_json, '["VARCHAR"]') END AS keys,
               -- A completion time later than a day after the catalog saw the run cannot
               -- be true (catalogs older than the timestamp range check may hold one): it
               -- ranks as unknown rather than winning forever.
               CASE WHEN r.completed_at <= r.registered_at + INTERVAL 1 DAY
                    THEN r.completed_at END AS completed_at,
               r.created_at
        FROM {ARTIFACTS_TABLE} a JOIN {RUNS_TABLE} r USING (run_id)
        WHERE r.status = 'completed'
    )
    , keyed AS (
        SELECT artifact_type, unnest(keys) AS partition_key, params_hash, run_id, path,
               len(keys) AS file_keys, run_dir, relative_path, completed_at, created_at
        FROM parts
    )
    SELECT * FROM keyed
    QUALIFY row_number() OVER (
        PARTITION BY artifact_type, partition_key, params_hash
        ORDER BY completed_at DESC NULLS LAST, created_at DESC, run_id DESC
    ) = 1
    ORDER BY 1, 2, 3
"""
PARAMS_COLUMN = pa.field("params_hash", pa.string(), nullable=False)


def export_schema(artifact_type: str) -> pa.Schema:
    """An export's columns: the artifact's, and the parameter set of each row."""
    return ARTIFACT_SCHEMAS[artifact_type].append(PARAMS_COLUMN)


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


class _SafeReader:
    """Reads artifact files through descriptors opened below the runs root.

    The catalogued path must be the run directory plus a plain relative path;
    the file is then opened component by component from the runs root (the
    run directory's grandparent) with no symbolic link followed
    (`safe_open.open_below`), and read from that descriptor. No name is looked
    up twice, so a swap between a check and the read is not possible.
    """

    def __init__(self) -> None:
        self._roots: dict[str, int] = {}

    def close(self) -> None:
        for fd in self._roots.values():
            os.close(fd)
        self._roots.clear()

    def _root(self, root: str) -> int:
        if root not in self._roots:
            # The runs root itself is configuration, trusted as given.
            self._roots[root] = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        return self._roots[root]

    def read(self, artifact_type: str, path: str, run_dir: str, relative_path: str) -> pa.Table:
        """The whole file, in the artifact's current schema; raises OSError or ArrowException."""
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
            raise UnsafePath("path is not the run directory plus a plain relative path")
        month = os.path.dirname(run_dir)
        root_fd = self._root(os.path.dirname(month))
        fd = open_below(root_fd, [os.path.basename(month), os.path.basename(run_dir), *parts], path)
        try:
            return _read_descriptor(fd, ARTIFACT_SCHEMAS[artifact_type])
        finally:
            os.close(fd)


def _read_descriptor(fd: int, schema: pa.Schema) -> pa.Table:
    """A Parquet file read from an open descriptor, projected onto `schema`."""
    fragment_format = ds.ParquetFileFormat()
    proc = reopen_path(fd)
    if proc is not None:  # Arrow's native reader on the very inode of `fd`
        with pa.OSFile(proc) as source:
            return fragment_format.make_fragment(source).to_table(schema=schema)
    with open(fd, "rb", closefd=False) as handle:
        return fragment_format.make_fragment(pa.PythonFile(handle)).to_table(schema=schema)


def refresh_exports(conn: duckdb.DuckDBPyConnection, exports_dir: Path) -> ExportStatus:
    """Rewrite the golden exports from the catalog behind `conn`."""
    ensure_tables(conn)
    exports_dir = Path(exports_dir)
    exports_dir.mkdir(parents=True, exist_ok=True)
    selection: dict[str, list[Chosen]] = defaultdict(list)
    locations: dict[str, tuple[str, str]] = {}  # path -> (run dir, relative path)
    for (
        artifact_type,
        key,
        phash,
        run_id,
        path,
        file_keys,
        run_dir,
        relative_path,
        *_,
    ) in conn.execute(_LATEST_SQL).fetchall():
        selection[artifact_type].append((key, phash, run_id, path, file_keys))
        locations[path] = (run_dir, relative_path)
    previous = read_export_status(exports_dir)

    files: dict[str, ExportFile] = {}
    problems: list[ExportProblem] = []
    for artifact_type in ARTIFACT_SCHEMAS:
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
        reader = _SafeReader()
        try:
            table, runs, found = _export_table(artifact_type, chosen, reader, locations)
        finally:
            reader.close()
        problems += found
        publish_parquet(out, table)
        files[artifact_type] = ExportFile(
            file=out.name,
            rows=table.num_rows,
            partitions=len(chosen),
            runs=sorted(runs),
            source_hash=source_hash,
        )
    _write_parameter_sets(conn, exports_dir)
    status = ExportStatus(generated_at=utc_now_iso(), files=files, problems=problems)
    publish_bytes(exports_dir / STATUS_FILE, status.model_dump_json(indent=2).encode())
    return status


# (partition key, params hash, run id, path, number of partitions in the file)
Chosen = tuple[str, str, str, str, int]


def _fill_partition_column(artifact_type: str, table: pa.Table, key: str) -> pa.Table:
    """Files written before 1.1 lack the partition column: it is their one partition key."""
    column = {"trades": "day", "errors": "day", "frontier": "month"}.get(artifact_type)
    if column is None or not key:
        return table
    index = table.schema.get_field_index(column)
    if table.column(index).null_count == 0:
        return table
    value = key.split("|", 1)[0]
    filled = pc.fill_null(table.column(index), value)
    return table.set_column(index, table.schema.field(index), filled)


def _read_file(
    artifact_type: str,
    reader: _SafeReader,
    path: str,
    location: tuple[str, str],
    keys: list[str],
    file_keys: int,
) -> pa.Table:
    """The rows of `keys` in one artifact file, in the artifact's current schema."""
    table = reader.read(artifact_type, path, *location)
    if file_keys > 1:
        mask = pc.is_in(row_partition_keys(artifact_type, table), value_set=pa.array(keys))
        table = table.filter(mask)
    elif keys:
        table = _fill_partition_column(artifact_type, table, keys[0])
    return table


def _export_table(
    artifact_type: str,
    chosen: list[Chosen],
    reader: _SafeReader,
    locations: dict[str, tuple[str, str]],
) -> tuple[pa.Table, set[str], list[ExportProblem]]:
    """One table of the chosen partitions' rows, each with its parameter set."""
    schema = export_schema(artifact_type)
    by_file: dict[tuple[str, str, str, int], list[str]] = defaultdict(list)
    for key, phash, run_id, path, file_keys in chosen:
        by_file[(path, run_id, phash, file_keys)].append(key)
    tables = [schema.empty_table()]
    runs: set[str] = set()
    problems: list[ExportProblem] = []
    for (path, run_id, phash, file_keys), keys in by_file.items():
        # Opened below the runs root with no symlink followed, read from that descriptor.
        try:
            table = _read_file(artifact_type, reader, path, locations[path], keys, file_keys)
        except (OSError, pa.ArrowException) as exc:
            problems += [_problem(artifact_type, k, run_id, path, str(exc)) for k in keys]
            continue
        table = table.append_column(PARAMS_COLUMN, pa.array([phash] * table.num_rows, pa.string()))
        tables.append(table.cast(schema))
        runs.add(run_id)
    return pa.concat_tables(tables), runs, problems


PARAMETER_SETS_FILE = "parameter_sets.parquet"
PARAMETER_SETS = pa.schema(
    [
        pa.field("params_hash", pa.string(), nullable=False),
        pa.field("layer", pa.string(), nullable=False),  # truth or policy
        pa.field("parameters_json", pa.string(), nullable=False),
    ]
)


def _write_parameter_sets(conn: duckdb.DuckDBPyConnection, exports_dir: Path) -> None:
    """`parameter_sets.parquet`: what each `params_hash` of the exports stands for."""
    rows = conn.execute(
        f"""
        SELECT DISTINCT a.artifact_type, r.parameters_json
        FROM {ARTIFACTS_TABLE} a JOIN {RUNS_TABLE} r USING (run_id)
        WHERE r.status = 'completed'
        """
    ).fetchall()
    sets: dict[str, tuple[str, str]] = {}
    for artifact_type, parameters_json in rows:
        try:
            parameters = json.loads(parameters_json)
        except ValueError:
            continue
        if not isinstance(parameters, dict):
            continue
        keys = keys_for(artifact_type)
        values = subset(parameters, keys)
        layer = "truth" if artifact_type in TRUTH_ARTIFACTS else "policy"
        sets[params_hash(artifact_type, parameters)] = (layer, canonical_json(values))
    table = pa.table(
        {
            "params_hash": list(sets),
            "layer": [layer for layer, _ in sets.values()],
            "parameters_json": [values for _, values in sets.values()],
        },
        schema=PARAMETER_SETS,
    )
    publish_parquet(exports_dir / PARAMETER_SETS_FILE, table)
