"""Artifact frames as Arrow tables: cast to the declared schema, rows per partition, back to pandas.

Plain Python (no Dagster): what the IO manager writes is cast here, and what
it reads is turned back into the frames the assets use.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from quantbot_assets.schemas import row_partition_keys


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


def rows_per_partition(name: str, table: pa.Table) -> dict[str, int]:
    """Rows of each partition key in an artifact table."""
    if table.num_rows == 0:
        return {}
    counts = pc.value_counts(row_partition_keys(name, table))
    return {
        str(item["values"]): int(item["counts"]) for item in counts.to_pylist() if item["values"]
    }


def to_pandas(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas(types_mapper=_nullable_types)


def _nullable_types(arrow_type: pa.DataType) -> Any:
    # Keep nullable int64 columns as Int64 instead of float64.
    if pa.types.is_int64(arrow_type):
        return pd.Int64Dtype()
    return None
