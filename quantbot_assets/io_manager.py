"""The run-directory Parquet IO manager: artifact tables in, artifact tables out.

An artifact asset's output is cast to its declared Arrow schema and written
through the run's `RunDirectory` (which records it in `run.json` and
completes the run). Downstream steps find an upstream partition's file from
Dagster's record of its latest materialization (the `path` metadata), so
they also read files written by earlier runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from dagster._core.execution.context.metadata_logging import (
    AssetMetadataHandle,
    OutputMetadataAccumulator,
)

from quantbot_assets.artifact_tables import rows_per_partition, to_arrow, to_pandas
from quantbot_assets.run_directories import RunDirectories
from quantbot_assets.run_directory import ArtifactFrame
from quantbot_assets.schemas import ARTIFACT_SCHEMAS, row_partition_keys


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
        directory = self.run_dirs.for_step(
            step_context.instance, step_context.job_def, step_context.dagster_run
        )
        path, _ = directory.record_artifact(
            name, table, keys, obj, context.asset_key.to_user_string()
        )
        # Each partition's own materialization: its rows, and what the asset adds.
        if len(keys) > 1:
            counts = rows_per_partition(name, table)
            add_partition_metadata(
                step_context,
                context.asset_key,
                {
                    key: {
                        "dagster/row_count": counts.get(key, 0),
                        **obj.partition_metadata.get(key, {}),
                    }
                    for key in keys
                },
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


def add_partition_metadata(
    step_context: Any, asset_key: dg.AssetKey, by_key: Mapping[str, Mapping[str, Any]]
) -> None:
    """Each partition's own metadata for its materialization, the step's keys at once.

    Dagster's `add_asset_metadata` checks its key against the step's partition range by
    listing the whole range, every call: for a run of 775 (day x policy) partitions that is
    1,550 calls listing 775 keys each, about 10 s. The keys here are the step's own
    (`asset_partition_keys`): the first goes through Dagster's checks, the rest straight
    into the step's metadata (its accumulator), where Dagster reads each partition's back
    when it logs that partition's materialization."""
    items = list(by_key.items())
    if not items:
        return
    first_key, first = items[0]
    step_context.add_asset_metadata(first, asset_key=asset_key, partition_key=first_key)
    accumulator = getattr(step_context, "_metadata_accumulator", None)
    if not isinstance(accumulator, OutputMetadataAccumulator):  # another Dagster: its way
        for key, metadata in items[1:]:
            step_context.add_asset_metadata(metadata, asset_key=asset_key, partition_key=key)
        return
    merged = dict(accumulator.per_output_metadata)
    for key, metadata in items[1:]:
        handle = AssetMetadataHandle(asset_key=asset_key, partition_key=key)
        merged[handle] = {**merged.get(handle, {}), **metadata}
    step_context._metadata_accumulator = OutputMetadataAccumulator(per_output_metadata=merged)


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
