"""Where calls and candles come from, and the structural checks made before any work.

Calls: a DuckDB table or view, a Parquet file or dataset, or a CSV file.
Candles: a Parquet file or dataset (hive `date=YYYY-MM-DD` partitions or not)
or a DuckDB table. Structural problems (missing file, table or column, wrong
type, timestamps not in epoch milliseconds) raise SourceError naming the file,
the table and the column. Row-level problems in calls become reject rows with
a reason (see sources/calls.py); row-level problems in candles are the engine's.

No SQL is built from user strings: paths go through DuckDB's Python API or
bound parameters, and a table name is looked up in the database's own
catalog before it is quoted into a query.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import duckdb
import pyarrow as pa

# Epoch milliseconds of real data lie between these: 1e11 ms is 1973-03-03
# (a seconds value for any date after 1973 is below it) and 1e14 ms is year
# 5138 (a microseconds value for any date after 1973 is above it).
MIN_EPOCH_MS = 100_000_000_000
MAX_EPOCH_MS = 100_000_000_000_000

CANDLE_SCHEMA = pa.schema(
    [
        pa.field("chain", pa.string(), nullable=False),
        pa.field("mint", pa.string(), nullable=False),
        pa.field("interval", pa.string(), nullable=False),
        pa.field("ts_ms", pa.int64(), nullable=False),
        pa.field("open", pa.float64()),
        pa.field("high", pa.float64()),
        pa.field("low", pa.float64()),
        pa.field("close", pa.float64()),
        pa.field("volume", pa.float64()),
    ]
)

_DUCKDB_SUFFIXES = (".duckdb", ".db")
_PARQUET_SUFFIXES = (".parquet", ".pq")
_CSV_SUFFIXES = (".csv", ".csv.gz")
_LOCK_WAIT_S = 10.0

# DuckDB type names accepted for each kind of column.
_INTEGER_TYPES = frozenset(
    {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT"}
    | {"UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT"}
)
_FLOAT_TYPES = frozenset({"FLOAT", "DOUBLE", "REAL"})

ColumnKind = Literal["string", "integer", "number"]


class SourceError(ValueError):
    """A calls or candles source that cannot be used as given; names file, table, column."""


@dataclass(frozen=True)
class CallsSource:
    kind: Literal["duckdb", "parquet", "csv"]
    path: Path
    table: str = "alerts"

    @property
    def where(self) -> str:
        return _where(self.kind, self.path, self.table)


@dataclass(frozen=True)
class CandleSource:
    """`parquet`: one file or a directory of files (hive date= partitions or not)."""

    kind: Literal["parquet", "duckdb"]
    path: Path
    table: str = "candles"

    @property
    def where(self) -> str:
        return _where(self.kind, self.path, self.table)


def _where(kind: str, path: Path, table: str) -> str:
    return f"{path} (table {table!r})" if kind == "duckdb" else str(path)


def _kind_of(path: Path, allowed: tuple[str, ...]) -> str:
    if not path.exists():
        raise SourceError(f"{path}: no such file or directory")
    name = path.name.lower()
    if path.is_dir():
        if "parquet" in allowed and parquet_files(path):
            return "parquet"
        raise SourceError(f"{path}: a directory without .parquet files")
    for kind, suffixes in (
        ("duckdb", _DUCKDB_SUFFIXES),
        ("parquet", _PARQUET_SUFFIXES),
        ("csv", _CSV_SUFFIXES),
    ):
        if kind in allowed and name.endswith(suffixes):
            return kind
    accepted = {
        "duckdb": ".duckdb/.db",
        "parquet": ".parquet (or a directory of them)",
        "csv": ".csv",
    }
    raise SourceError(
        f"{path}: cannot tell the file kind from its name; accepted: "
        + ", ".join(accepted[k] for k in allowed)
    )


def calls_source_from_path(path: Path | str, table: str = "alerts") -> CallsSource:
    """A calls source whose kind follows the suffix: .duckdb/.db, .parquet (or a directory), .csv."""
    path = Path(path)
    kind = _kind_of(path, ("duckdb", "parquet", "csv"))
    if kind == "duckdb":
        return CallsSource("duckdb", path, table)
    return CallsSource("parquet" if kind == "parquet" else "csv", path, table)


def candle_source_from_path(path: Path | str, table: str = "candles") -> CandleSource:
    """A candle source: a .duckdb/.db table, or a .parquet file or directory of them."""
    path = Path(path)
    kind = _kind_of(path, ("duckdb", "parquet"))
    return CandleSource("duckdb" if kind == "duckdb" else "parquet", path, table)


def parquet_files(path: Path) -> list[Path]:
    """A file itself, or the .parquet files under a directory in sorted order.

    Names starting with '.' or '_' are skipped at any depth: writers use them
    for temporary files and markers (_SUCCESS, .part-0.parquet.tmp).
    """
    if path.is_file():
        return [path]
    return sorted(
        p
        for p in path.rglob("*")
        if p.is_file()
        and p.name.lower().endswith(_PARQUET_SUFFIXES)
        and not any(part.startswith((".", "_")) for part in p.relative_to(path).parts)
    )


def connect_read_only(path: Path, where: str) -> duckdb.DuckDBPyConnection:
    """Open a DuckDB file read-only, waiting a little while a writer holds its lock."""
    delay = 0.05
    deadline = time.monotonic() + _LOCK_WAIT_S
    while True:
        try:
            return duckdb.connect(str(path), read_only=True)
        except duckdb.Error as exc:
            if "lock" in str(exc).lower() and time.monotonic() < deadline:
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            raise SourceError(f"{where}: cannot open the DuckDB database: {exc}") from exc


def table_ref(con: duckdb.DuckDBPyConnection, table: str, where: str) -> str:
    """The quoted name of an existing table or view, looked up in the catalog.

    `table` may be `name` or `schema.name`; only names the database itself
    lists are ever quoted into SQL.
    """
    schema, _, name = table.rpartition(".")
    rows = con.execute(
        "SELECT table_schema, table_name FROM information_schema.tables"
        " WHERE table_catalog = current_database() AND table_name = ?"
        " AND (? = '' OR table_schema = ?) ORDER BY table_schema <> 'main', table_schema",
        [name, schema, schema],
    ).fetchall()
    if not rows:
        known = sorted(
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_catalog = current_database()"
            ).fetchall()
        )
        raise SourceError(
            f"{where}: no table or view named {table!r} (found: {', '.join(known) or 'none'})"
        )
    found_schema, found_name = rows[0]
    return f"{_quote(found_schema)}.{_quote(found_name)}"


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _accepts(kind: ColumnKind, duck_type: str) -> bool:
    base = duck_type.upper().split("(")[0]
    if base in ("NULL", '"NULL"'):
        return True  # an all-null column has no type to be wrong; its rows are judged one by one
    if kind == "string":
        return base in ("VARCHAR", "ENUM")
    if kind == "integer":
        return base in _INTEGER_TYPES
    return base in _INTEGER_TYPES or base in _FLOAT_TYPES or base == "DECIMAL"


_KIND_WORDS: dict[ColumnKind, str] = {
    "string": "a string (VARCHAR)",
    "integer": "an integer (epoch milliseconds)",
    "number": "a number",
}


def check_columns(
    found: dict[str, str],
    required: dict[str, ColumnKind],
    optional: dict[str, ColumnKind],
    where: str,
) -> None:
    """Raise SourceError for the first missing or mistyped column; `found` maps name -> DuckDB type."""
    for column, kind in {**required, **optional}.items():
        if column not in found:
            if column in optional:
                continue
            near = [c for c in found if c.lower() == column.lower()]
            hint = f" (found {near[0]!r}: names are case-sensitive)" if near else ""
            raise SourceError(
                f"{where}: missing column {column!r}{hint}; columns found: {', '.join(found)}"
            )
        if not _accepts(kind, found[column]):
            raise SourceError(
                f"{where}: column {column!r} has type {found[column]}, expected {_KIND_WORDS[kind]}"
            )


def check_epoch_ms(
    lo: int | None, hi: int | None, where: str, column: str, bad: int | None = None
) -> None:
    """Raise when a timestamp column's range [lo, hi] leaves epoch milliseconds.

    `bad`, when known, is the number of offending values (for the message).
    """
    if lo is None or hi is None or (lo >= MIN_EPOCH_MS and hi < MAX_EPOCH_MS):
        return
    unit = "seconds" if lo < MIN_EPOCH_MS else "microseconds or nanoseconds"
    count = f"{bad} value(s)" if bad is not None else "values"
    raise SourceError(
        f"{where}: column {column!r} has {count} outside epoch milliseconds"
        f" (range {lo} .. {hi}); they look like {unit}. Timestamps must be UTC epoch"
        f" milliseconds between {MIN_EPOCH_MS} and {MAX_EPOCH_MS}"
    )


def check_window(start_ms: int, end_ms: int) -> None:
    """A non-empty window must be in epoch milliseconds (a caller's bug otherwise).

    An empty window (end <= start, e.g. (0, 0) for a day without calls) is
    allowed and simply selects nothing.
    """
    if end_ms <= start_ms:
        return
    if not (MIN_EPOCH_MS <= start_ms < MAX_EPOCH_MS and end_ms <= MAX_EPOCH_MS):
        raise ValueError(f"window [{start_ms}, {end_ms}) is not a range of UTC epoch milliseconds")
