"""The run-directory Parquet IO manager: one directory per Dagster run.

Each Dagster run that writes artifacts gets `runs/YYYY-MM/run_id=<run id>/`
with `run.json`, its artifact files and, once every artifact the run planned
is in place, `_SUCCESS` (written last). A failed step gets `status: failed`
and `_FAILED` from the failure hook. Downstream steps find an upstream
partition's file from Dagster's record of its latest materialization (the
`path` metadata), so they also read files written by earlier runs.
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from quantbot_assets.rundir import (
    FAILED_MARKER,
    SUCCESS_MARKER,
    ArtifactEntry,
    DatasetWindow,
    FeaturesEntry,
    RunManifest,
    RunType,
    atomic_write_bytes,
    atomic_write_parquet,
    config_hash,
    iso_utc,
    locked_manifest,
    run_dir_path,
    utc_now_iso,
    write_marker,
)
from quantbot_assets.schemas import (
    ARTIFACT_FILES,
    ARTIFACT_SCHEMAS,
    SCHEMA_VERSIONS,
    row_partition_keys,
)

ARTIFACT_ASSETS = frozenset(ARTIFACT_FILES)
ERROR_SIDE_DIR = "errors/by_step"


@dataclass
class ArtifactFrame:
    """What an artifact asset returns: its rows plus what the manifest records."""

    frame: pd.DataFrame
    errors: pd.DataFrame | None = None  # rows of schemas.ERRORS found by this step
    parameters: dict[str, Any] = field(default_factory=dict)
    dataset: dict[str, Any] = field(default_factory=dict)  # from, to, interval, calls_count
    timing: dict[str, float] = field(default_factory=dict)  # phase -> ms
    params_hash: str | None = None  # the parameter set (quantbot_assets.params)
    # partition key -> metadata of that partition's materialization
    partition_metadata: dict[str, dict[str, Any]] = field(default_factory=dict)
    features: list[FeaturesEntry] = field(default_factory=list)
    # (calls_hash, candles_hash, data_fingerprint) of the data the run read; the artifact
    # written last wins (a policy run's trades after the truth layer it computed for some days)
    data: tuple[str, str, str] | None = None


class SchemaMismatch(ValueError):
    """A frame does not match the declared Arrow schema of its artifact type."""


def to_arrow(frame: pd.DataFrame, schema: pa.Schema, name: str) -> pa.Table:
    """Cast `frame` to `schema` exactly (column names, order, types, nullability)."""
    missing = [f.name for f in schema if f.name not in frame.columns]
    extra = [c for c in frame.columns if c not in schema.names]
    if missing or extra:
        raise SchemaMismatch(f"{name}: missing columns {missing}, unexpected columns {extra}")
    try:
        table = pa.Table.from_pandas(frame[schema.names], preserve_index=False)
        table = table.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError) as exc:
        raise SchemaMismatch(f"{name}: {exc}") from exc
    for column in schema:
        if not column.nullable and table.column(column.name).null_count:
            raise SchemaMismatch(f"{name}: column {column.name!r} has nulls but is not nullable")
    return table


@cache
def git_provenance(project_dir: str) -> tuple[str | None, str | None, bool | None]:
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", "-C", project_dir, *args], capture_output=True, text=True, timeout=5
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    branch = git("rev-parse", "--abbrev-ref", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return commit, branch, (None if status is None else bool(status))


def run_created(instance: dg.DagsterInstance, run_id: str) -> datetime:
    """When Dagster created the run (its directory's month comes from this)."""
    record = instance.get_run_record_by_id(run_id)
    return record.create_timestamp if record is not None else datetime.now(UTC)


def write_run_log(
    instance: dg.DagsterInstance, run_id: str, run_dir: Path, error: str | None = None
) -> None:
    """`logs/stdout.txt`: the run's Dagster log lines so far (the UI keeps the full log)."""
    lines = [f"# Dagster run {run_id}: the full event log is in the Dagster UI under Runs"]
    for entry in instance.all_logs(run_id):
        if not entry.user_message:
            continue  # structured events (materializations...) are in the UI
        when = datetime.fromtimestamp(entry.timestamp, UTC).isoformat(timespec="milliseconds")
        level = logging.getLevelName(entry.level)
        lines.append(f"{when} {level:<7} {entry.step_key or '-':<20} {entry.user_message}")
    if error:
        lines.append(f"FAILED {error}")
    atomic_write_bytes(run_dir / "logs" / "stdout.txt", ("\n".join(lines) + "\n").encode())


def planned_artifacts(step_context: Any) -> list[str]:
    """Artifact assets this run materializes: the run's asset selection, or its job's assets."""
    selected = step_context.dagster_run.asset_selection or (
        step_context.job_def.asset_layer.executable_asset_keys
    )
    names = {key.path[-1] for key in selected}
    return [name for name in ARTIFACT_FILES if name in names]


def planned_checks(step_context: Any) -> list[str]:
    """Names of the asset checks this run executes after its artifacts (recorded in checks/).

    The checks of the run's check-only steps (the `@multi_asset_check`s), as
    the run's job (already narrowed to the run's asset and check selection)
    holds them, narrowed again by the run's check and step selection (a
    re-execution). Checks an asset step yields itself (the blocking lookahead
    checks) are not listed: they pass before `_SUCCESS` or the step fails.
    """
    run = step_context.dagster_run
    selection = run.asset_check_selection
    steps = set(run.step_keys_to_execute) if run.step_keys_to_execute is not None else None
    names: set[str] = set()
    for data in step_context.job_def.asset_layer.data:
        if data.assets_def.keys:
            continue  # an asset step: its own checks run before its outputs
        if steps is not None and data.node_handle.name not in steps:
            continue
        for key in data.assets_def.check_keys:
            if selection is None or key in selection:
                names.add(key.name)
    return sorted(names)


def run_type_for(planned: list[str]) -> RunType:
    if "frontier" in planned or "walk_forward" in planned:
        return "optimization"
    if "trades" in planned or "summary" in planned:
        return "policy"
    return "path-only"


def artifact_out(group: str, description: str) -> dg.AssetOut:
    """An artifact output of a multi-asset: written to the run directory as Parquet."""
    return dg.AssetOut(
        group_name=group,
        io_manager_key="run_dir_io_manager",
        kinds={"parquet"},
        description=description,
    )


def run_partition_keys(context: dg.AssetExecutionContext) -> list[str]:
    """Every partition key this step materializes (a single-run backfill has many)."""
    if context.assets_def.partitions_def is None:
        return []
    return [str(key) for key in context.partition_keys]


class RunDirectories(dg.ConfigurableResource):
    """Where run directories live (`runs/` by default; QUANTBOT_RUNS_DIR)."""

    runs_dir: str
    project_dir: str = "."

    def run_dir(self, instance: dg.DagsterInstance, run_id: str) -> Path:
        return run_dir_path(Path(self.runs_dir), run_id, run_created(instance, run_id))

    def _new_manifest(
        self, instance: dg.DagsterInstance, run_id: str, step_context: Any
    ) -> RunManifest:
        planned = planned_artifacts(step_context)
        commit, branch, dirty = git_provenance(self.project_dir)
        return RunManifest(
            run_id=run_id,
            run_type=run_type_for(planned),
            status="pending",
            created_at=iso_utc(run_created(instance, run_id)),
            git_commit=commit,
            git_branch=branch,
            git_dirty=dirty,
            job_name=step_context.job_name,
            planned_artifacts=planned,
            schema_versions={name: SCHEMA_VERSIONS[name] for name in planned},
            planned_checks=planned_checks(step_context),
        )

    @contextmanager
    def manifest(self, context: dg.AssetExecutionContext) -> Iterator[RunManifest]:
        """Open (creating if needed) this run's manifest for update."""
        step_context = context.get_step_execution_context()
        run_dir = self.run_dir(context.instance, context.run.run_id)
        default = self._new_manifest(context.instance, context.run.run_id, step_context)
        with locked_manifest(run_dir, default) as manifest:
            yield manifest

    def begin(self, context: dg.AssetExecutionContext) -> Path:
        """Create the run directory (status pending) before the step's work starts."""
        keys = run_partition_keys(context)
        with self.manifest(context) as manifest:
            for asset_key in context.selected_asset_keys:
                if keys:
                    manifest.partition_keys[asset_key.to_user_string()] = keys
        return self.run_dir(context.instance, context.run.run_id)

    def mark_running(self, context: dg.AssetExecutionContext) -> None:
        with self.manifest(context) as manifest:
            if manifest.status == "pending":
                manifest.status = "running"
                manifest.started_at = manifest.started_at or utc_now_iso()

    def mark_failed(
        self, instance: dg.DagsterInstance, run_id: str, step_key: str, error: str
    ) -> Path:
        run_dir = self.run_dir(instance, run_id)
        run = instance.get_run_by_id(run_id)
        # Only when the run failed before its first step wrote anything.
        default = RunManifest(
            run_id=run_id,
            run_type=run_type_for([step_key]),
            created_at=iso_utc(run_created(instance, run_id)),
            job_name=run.job_name if run is not None else None,
        )
        with locked_manifest(run_dir, default) as manifest:
            manifest.status = "failed"
            manifest.completed_at = utc_now_iso()
            manifest.error = f"{step_key}: {error}"
        (run_dir / SUCCESS_MARKER).unlink(missing_ok=True)
        write_run_log(instance, run_id, run_dir, manifest.error)
        write_marker(run_dir, FAILED_MARKER, manifest.error)
        return run_dir


def _merge_dataset(window: DatasetWindow, dataset: dict[str, Any]) -> DatasetWindow:
    merged = window.model_dump(by_alias=True)
    for key in ("from", "to"):
        value = dataset.get(key)
        if value is None:
            continue
        current = merged.get(key)
        if (
            current is None
            or (key == "from" and value < current)
            or (key == "to" and value > current)
        ):
            merged[key] = value
    if dataset.get("interval"):
        merged["interval"] = dataset["interval"]
    if dataset.get("calls_count") is not None:
        merged["calls_count"] = max(merged.get("calls_count") or 0, dataset["calls_count"])
    return DatasetWindow.model_validate(merged)


def latest_materialization_metadata(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, partition_key: str | None
) -> dict[str, Any]:
    """Metadata values of the newest materialization of one asset partition."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=asset_key,
            asset_partitions=[partition_key] if partition_key is not None else None,
        ),
        limit=1,
    ).records
    if not records or records[0].asset_materialization is None:
        where = f" partition {partition_key}" if partition_key is not None else ""
        raise dg.Failure(
            f"{asset_key.to_user_string()}{where} has never been materialized: "
            "materialize it first (or select it in the same run)"
        )
    metadata = records[0].asset_materialization.metadata
    return {key: getattr(value, "value", value) for key, value in metadata.items()}


def record_artifact(
    run_dirs: RunDirectories,
    step_context: Any,
    run_id: str,
    name: str,
    table: pa.Table,
    partition_keys: list[str],
    params_hash: str | None,
    artifact: ArtifactFrame | None = None,
    asset_key: str | None = None,
) -> tuple[Path, int]:
    """Write one artifact file into the run directory and record it in `run.json`.

    Writes `_SUCCESS` once every artifact the run planned is recorded. Returns
    the file's path and size.
    """
    started = time.perf_counter()
    instance = step_context.instance
    run_dir = run_dirs.run_dir(instance, run_id)
    relative = ARTIFACT_FILES[name]
    nbytes = atomic_write_parquet(table, run_dir / relative)
    default = run_dirs._new_manifest(instance, run_id, step_context)
    with locked_manifest(run_dir, default) as manifest:
        manifest.artifacts[name] = ArtifactEntry(
            path=relative,
            rows=table.num_rows,
            bytes=nbytes,
            schema_version=SCHEMA_VERSIONS[name],
            asset_key=asset_key or name,
            partition_key=partition_keys[0] if len(partition_keys) == 1 else None,
            partition_keys=partition_keys,
            params_hash=params_hash,
        )
        manifest.schema_versions[name] = SCHEMA_VERSIONS[name]
        if partition_keys:
            manifest.partition_keys[asset_key or name] = partition_keys
        if artifact is not None:
            manifest.parameters.update(artifact.parameters)
            manifest.dataset = _merge_dataset(manifest.dataset, artifact.dataset)
            manifest.timing.update(artifact.timing)
            manifest.features += [f for f in artifact.features if f not in manifest.features]
            if artifact.data is not None:
                manifest.calls_hash, manifest.candles_hash, manifest.data_fingerprint = (
                    artifact.data
                )
        if manifest.parameters:
            manifest.config_hash = config_hash(manifest.parameters)
        manifest.timing[f"{name}.write"] = round((time.perf_counter() - started) * 1000, 3)
        if manifest.status == "pending":
            manifest.status = "running"
            manifest.started_at = manifest.started_at or utc_now_iso()
        complete = manifest.status != "failed" and set(manifest.planned_artifacts) <= set(
            manifest.artifacts
        )
        if complete:
            manifest.status = "completed"
            manifest.completed_at = utc_now_iso()
            manifest.timing["total"] = round(
                (_parse_iso(manifest.completed_at) - _parse_iso(manifest.created_at)) * 1000, 3
            )
    if complete:
        write_run_log(instance, run_id, run_dir)
        write_marker(run_dir, SUCCESS_MARKER)
    return run_dir / relative, nbytes


def rows_per_partition(name: str, table: pa.Table) -> dict[str, int]:
    """Rows of each partition key in an artifact table."""
    if table.num_rows == 0:
        return {}
    counts = pc.value_counts(row_partition_keys(name, table))
    return {
        str(item["values"]): int(item["counts"]) for item in counts.to_pylist() if item["values"]
    }


class RunDirIOManager(dg.ConfigurableIOManager):
    """Writes artifact frames as zstd Parquet into the run directory; reads the latest."""

    run_dirs: RunDirectories

    def handle_output(self, context: dg.OutputContext, obj: ArtifactFrame) -> None:
        name = context.asset_key.path[-1]
        if not isinstance(obj, ArtifactFrame):
            raise TypeError(f"asset {name} must return an ArtifactFrame, got {type(obj).__name__}")
        table = to_arrow(obj.frame, ARTIFACT_SCHEMAS[name], name)
        keys = (
            [str(k) for k in context.asset_partition_keys] if context.has_asset_partitions else []
        )
        step_context = context.step_context
        path, _ = record_artifact(
            self.run_dirs,
            step_context,
            context.run_id,
            name,
            table,
            keys,
            obj.params_hash,
            obj,
            context.asset_key.to_user_string(),
        )
        # Each partition's own materialization: its rows, and what the asset adds.
        counts = rows_per_partition(name, table) if len(keys) > 1 else {}
        for key in keys if len(keys) > 1 else []:
            step_context.add_asset_metadata(
                {"dagster/row_count": counts.get(key, 0), **obj.partition_metadata.get(key, {})},
                asset_key=context.asset_key,
                partition_key=key,
            )
        shared: dict[str, Any] = (
            dict(obj.partition_metadata.get(keys[0], {})) if len(keys) == 1 else {}
        )
        shared.update(
            {
                "path": dg.MetadataValue.path(str(path)),
                "run_dir": dg.MetadataValue.path(str(path.parent.parent)),
                "dagster/row_count": table.num_rows,
                "partitions_in_run": len(keys),
            }
        )
        context.add_output_metadata(shared)

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        upstream = context.asset_key
        keys: list[str | None] = (
            [str(k) for k in context.asset_partition_keys]
            if context.has_asset_partitions
            else [None]
        )
        return read_partitions(context.instance, upstream, keys)


def read_partitions(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, keys: list[str | None]
) -> pd.DataFrame:
    """The rows of `keys` from each key's newest materialization (files read once each)."""
    by_path: dict[Path, list[str | None]] = {}
    for key in keys:
        metadata = latest_materialization_metadata(instance, asset_key, key)
        by_path.setdefault(Path(str(metadata["path"])), []).append(key)
    return read_files(by_path, asset_key.path[-1])


def read_files(files: Mapping[Path, Sequence[str | None]], name: str) -> pd.DataFrame:
    """The rows of the given partition keys of each artifact file (None: every row)."""
    frames = []
    for path, wanted in files.items():
        table = read_artifact_table(Path(path), name)
        if None not in wanted and rows_per_partition(name, table).keys() - set(wanted):
            mask = pc.is_in(row_partition_keys(name, table), value_set=pa.array(wanted))
            table = table.filter(mask)
        frames.append(table)
    if not frames:
        return ARTIFACT_SCHEMAS[name].empty_table().to_pandas()
    return to_pandas(pa.concat_tables(frames))


def _parse_iso(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def read_artifact_table(path: Path, name: str) -> pa.Table:
    """Read an artifact file, refusing one whose schema is not the declared one."""
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise dg.Failure(f"cannot read {name} artifact {path}: {exc}") from exc
    expected = ARTIFACT_SCHEMAS[name]
    if not table.schema.equals(expected, check_metadata=False):
        raise dg.Failure(f"{name} artifact {path} does not have the declared schema")
    return table


def read_artifact(path: Path, name: str) -> pd.DataFrame:
    return to_pandas(read_artifact_table(path, name))


def to_pandas(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas(types_mapper=_nullable_types)


def _nullable_types(arrow_type: pa.DataType) -> Any:
    # Keep nullable int64 columns as Int64 instead of float64.
    if pa.types.is_int64(arrow_type):
        return pd.Int64Dtype()
    return None


@dg.failure_hook(required_resource_keys={"run_dirs"})
def mark_run_failed(context: dg.HookContext) -> None:
    """Write status failed and _FAILED into the run directory of a failed step."""
    error = repr(context.op_exception) if context.op_exception is not None else "step failed"
    run_dir = context.resources.run_dirs.mark_failed(
        context.instance, context.run_id, context.step_key, error
    )
    context.log.error(f"run directory {run_dir} marked failed")
