"""Loading the candles of some series over a time window, reading only what is needed.

Parquet: files under `date=YYYY-MM-DD` directories outside the window's dates
are never opened; inside a file, row groups whose mint or ts_ms statistics
cannot match are skipped (files sorted by mint make that effective). Files
outside any `date=` directory are always read. DuckDB: a semi-join on the
requested (chain, mint) keys with the window as bound parameters.

A store without an `interval` column holds one interval: its bars are taken
as 1m bars (ASSUMED_INTERVAL), so 5m/15m/1h runs resample them like any 1m
store (bars of a coarser interval aligned on its boundaries resample to
themselves). `check_candle_source` says so before a run starts.

Only structure is checked here (columns, types, timestamp units). Rows are
returned as stored, duplicates and bad prices included, sorted by
(chain, mint, ts_ms) with stored order kept among equal keys: the engine
reports row-level problems.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from quantbot_assets.sources.access import (
    CANDLE_SCHEMA,
    MAX_EPOCH_MS,
    MIN_EPOCH_MS,
    CandleSource,
    ColumnKind,
    SourceError,
    check_columns,
    check_epoch_ms,
    check_window,
    connect_read_only,
    parquet_files,
    table_ref,
)

REQUIRED: dict[str, ColumnKind] = {
    "chain": "string",
    "mint": "string",
    "ts_ms": "integer",
    "open": "number",
    "high": "number",
    "low": "number",
    "close": "number",
}
# volume absent: null volumes; interval absent: every bar is ASSUMED_INTERVAL.
OPTIONAL: dict[str, ColumnKind] = {"interval": "string", "volume": "number"}
ASSUMED_INTERVAL = "1m"
# How many files of a Parquet dataset, and rows of a DuckDB table, the preflight looks at.
_CHECK_FILES = 64
_CHECK_ROWS = 10_000
_DATE_DIR = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")
_KEY_SEP = "\x1f"  # joins chain and mint into one key; cannot occur in either


def load_candles(
    source: CandleSource,
    keys: pd.DataFrame,
    start_ms: int,
    end_ms: int,
    *,
    interval: str | None = None,
    categorical: bool = False,
    sort: bool = True,
) -> pd.DataFrame:
    """Bars of the (chain, mint) series in `keys` with ts_ms in [start_ms, end_ms).

    Columns are CANDLE_SCHEMA's (float64 prices, int64 ts_ms); `interval`,
    when given, keeps only bars of that interval. `categorical=True` returns
    chain, mint and interval as pandas categoricals, straight from the
    Parquet dictionaries: cheaper for large loads, and the engine groups
    series by category codes without a string sort. `sort=False` leaves the rows of a
    Parquet dataset in file order (each file's rows sorted by series and time), for a
    caller that groups them itself: `prepare_candles` orders such runs of rows per series
    without sorting rows, which saves sorting the whole load twice.
    """
    check_window(start_ms, end_ms)
    missing = [c for c in ("chain", "mint") if c not in keys.columns]
    if missing:
        raise ValueError(f"keys lacks column(s) {missing}; expected a DataFrame[chain, mint]")
    wanted = (
        pa.Table.from_pandas(keys[["chain", "mint"]], preserve_index=False)
        .cast(pa.schema([("chain", pa.string()), ("mint", pa.string())]))
        .drop_null()
    )
    if source.kind == "duckdb":
        table = _load_duckdb(source, wanted, start_ms, end_ms)
    else:
        table = _load_parquet(source, wanted, start_ms, end_ms, sort=sort)
    table = table.cast(_CATEGORICAL_SCHEMA if categorical else CANDLE_SCHEMA)
    if interval is not None:
        table = table.filter(pc.equal(table.column("interval").cast(pa.string()), interval))
    # One block per column: pandas does not copy the five price columns into one 2-D block
    # (about 4x faster for a month of 1m bars). self_destruct: each column's Arrow buffers
    # are released as it is converted, so the load does not hold two copies of every column.
    return table.to_pandas(split_blocks=True, self_destruct=True)


_DICTIONARY = pa.dictionary(pa.int32(), pa.string())
_CATEGORICAL_SCHEMA = pa.schema(
    [f.with_type(_DICTIONARY) if f.type == pa.string() else f for f in CANDLE_SCHEMA]
)


def _finish(table: pa.Table) -> pa.Table:
    """CANDLE_SCHEMA's columns and numeric types, strings left dictionary-encoded if they are.

    Decoding waits until the end (load_candles), and is skipped for categorical output.
    """
    if "volume" not in table.column_names:
        table = table.append_column("volume", pa.nulls(len(table), pa.float64()))
    if "interval" not in table.column_names:
        table = table.append_column(
            "interval",
            pa.DictionaryArray.from_arrays(
                pa.array(np.zeros(len(table), dtype=np.int32)), pa.array([ASSUMED_INTERVAL])
            ),
        )
    target = pa.schema(
        [
            f.with_type(_DICTIONARY)
            if f.type == pa.string() and pa.types.is_dictionary(table.schema.field(f.name).type)
            else f
            for f in CANDLE_SCHEMA
        ]
    )
    return table.select(target.names).cast(target)


def _empty() -> pa.Table:
    return CANDLE_SCHEMA.empty_table()


def _load_duckdb(source: CandleSource, wanted: pa.Table, start_ms: int, end_ms: int) -> pa.Table:
    where = source.where
    con = connect_read_only(source.path, where)
    try:
        relation = table_ref(con, source.table, where)
        found = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()}
        check_columns(found, REQUIRED, OPTIONAL, where)
        lo, hi, bad = con.execute(
            f"SELECT min(ts_ms), max(ts_ms), count(*) FILTER (WHERE ts_ms < ? OR ts_ms >= ?)"
            f" FROM {relation}",
            [MIN_EPOCH_MS, MAX_EPOCH_MS],
        ).fetchall()[0]
        check_epoch_ms(lo, hi, where, "ts_ms", bad)
        volume = "CAST(c.volume AS DOUBLE)" if "volume" in found else "CAST(NULL AS DOUBLE)"
        interval = "CAST(c.interval AS VARCHAR)" if "interval" in found else f"'{ASSUMED_INTERVAL}'"
        con.register("requested_series", wanted)
        # `relation` was checked against the catalog; values travel as parameters.
        return _finish(
            con.sql(
                "SELECT CAST(c.chain AS VARCHAR) AS chain, CAST(c.mint AS VARCHAR) AS mint,"
                f" {interval} AS interval, CAST(c.ts_ms AS BIGINT) AS ts_ms,"
                " CAST(c.open AS DOUBLE) AS open, CAST(c.high AS DOUBLE) AS high,"
                " CAST(c.low AS DOUBLE) AS low, CAST(c.close AS DOUBLE) AS close,"
                f" {volume} AS volume"
                f" FROM {relation} AS c SEMI JOIN requested_series AS k"
                " ON c.chain = k.chain AND c.mint = k.mint"
                " WHERE c.ts_ms >= ? AND c.ts_ms < ?"
                " ORDER BY chain, mint, ts_ms",
                params=[start_ms, end_ms],
            ).to_arrow_table()
        )
    except duckdb.Error as exc:
        raise SourceError(f"{where}: cannot read: {exc}") from exc
    finally:
        con.close()


def _window_dates(start_ms: int, end_ms: int) -> tuple[date, date]:
    first = datetime.fromtimestamp(start_ms / 1000, tz=UTC).date()
    last = datetime.fromtimestamp((max(end_ms, start_ms + 1) - 1) / 1000, tz=UTC).date()
    return first, last


def _in_window_dates(path: Path, root: Path, first: date, last: date) -> bool:
    """False only for files under a date=YYYY-MM-DD directory outside [first, last]."""
    if path == root:
        return True
    for part in path.relative_to(root).parts[:-1]:
        match = _DATE_DIR.match(part)
        if match:
            return first <= date.fromisoformat(match.group(1)) <= last
    return True


def _arrow_kind(t: pa.DataType) -> str:
    """The DuckDB-style type name check_columns understands, for an Arrow type."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "VARCHAR"
    if pa.types.is_integer(t):
        return "BIGINT"
    if pa.types.is_floating(t):
        return "DOUBLE"
    if pa.types.is_decimal(t):
        return "DECIMAL"
    return str(t).upper()


def _load_parquet(
    source: CandleSource, wanted: pa.Table, start_ms: int, end_ms: int, *, sort: bool = True
) -> pa.Table:
    root = source.path
    if not root.exists():
        raise SourceError(f"{root}: no such file or directory")
    files = parquet_files(root)
    if not files:
        raise SourceError(f"{root}: no .parquet files")
    first, last = _window_dates(start_ms, end_ms)
    chosen = [f for f in files if _in_window_dates(f, root, first, last)]
    if not chosen:
        # Still check the structure, so a wrong dataset fails loudly on any window.
        _parquet_columns(files[0])
        return _empty()
    if len(wanted) == 0:
        _parquet_columns(chosen[0])
        return _empty()
    chains = np.unique(np.asarray(wanted.column("chain").to_pylist(), dtype=str))
    mints = np.unique(np.asarray(wanted.column("mint").to_pylist(), dtype=str))
    pairs = set(
        zip(wanted.column("chain").to_pylist(), wanted.column("mint").to_pylist(), strict=True)
    )
    order = _SeriesOrder(chains, mints, start_ms)

    def read(path: Path) -> tuple[pa.Table, np.ndarray]:
        columns = _parquet_columns(path)
        try:
            return _read_file(path, columns, order, pairs, end_ms)
        except (OSError, pa.ArrowException) as exc:
            raise SourceError(f"{path}: cannot read: {exc}") from exc

    # Files decode in parallel (Arrow releases the GIL); map keeps their order.
    with ThreadPoolExecutor(max_workers=min(4, len(chosen))) as pool:
        parts = list(pool.map(read, chosen))
    table = pa.concat_tables([t for t, _ in parts])
    key = np.concatenate([k for _, k in parts])
    if sort and len(key) and not (key[1:] >= key[:-1]).all():
        table = table.take(
            pa.array(np.argsort(key, kind="stable"))
        )  # stable: duplicates keep order
    return table


@dataclass(frozen=True)
class _SeriesOrder:
    """One int64 per row that sorts like (chain, mint, ts_ms).

    The requested chains and mints, sorted, give each series a rank; rows are
    inside [start_ms, end_ms), a span far below 2**40 ms (34 years), and
    series number far below 2**23, so rank and time share one integer and
    sorting it is much faster than sorting strings.
    """

    chains: np.ndarray  # sorted unique requested chains
    mints: np.ndarray  # sorted unique requested mints
    start_ms: int

    def keys(
        self, chain: pa.DictionaryArray, mint: pa.DictionaryArray, ts: np.ndarray
    ) -> np.ndarray:
        c = np.searchsorted(self.chains, np.asarray(chain.dictionary.to_pylist(), dtype=str))
        m = np.searchsorted(self.mints, np.asarray(mint.dictionary.to_pylist(), dtype=str))
        rank = c[chain.indices.to_numpy()].astype(np.int64) * len(self.mints)
        rank += m[mint.indices.to_numpy()]
        return (rank << 40) | (ts - self.start_ms)


def _parquet_columns(path: Path) -> list[str]:
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as exc:
        raise SourceError(f"{path}: not a readable Parquet file: {exc}") from exc
    found = {f.name: _arrow_kind(f.type) for f in schema}
    check_columns(found, REQUIRED, OPTIONAL, str(path))
    return [c for c in CANDLE_SCHEMA.names if c in found]


def _read_file(
    path: Path,
    columns: list[str],
    order: _SeriesOrder,
    pairs: set[tuple[str, str]],
    end_ms: int,
) -> tuple[pa.Table, np.ndarray]:
    """The rows of one file for the requested series and window, with their sort keys."""
    start_ms, mints = order.start_ms, order.mints
    strings = [c for c in ("chain", "mint", "interval") if c in columns]
    pf = pq.ParquetFile(path, read_dictionary=strings)
    meta = pf.metadata
    names = [meta.schema.column(i).name for i in range(meta.num_columns)]
    ts_col, mint_col = names.index("ts_ms"), names.index("mint")
    groups = []
    for g in range(meta.num_row_groups):
        rg = meta.row_group(g)
        ts = rg.column(ts_col).statistics
        if ts is not None and ts.has_min_max:
            check_epoch_ms(ts.min, ts.max, str(path), "ts_ms")
            if ts.max < start_ms or ts.min >= end_ms:
                continue
        mn = rg.column(mint_col).statistics
        if mn is not None and mn.has_min_max:
            lo, hi = _as_str(mn.min), _as_str(mn.max)
            i = np.searchsorted(mints, lo)
            if i == len(mints) or mints[i] > hi:
                continue  # no requested mint falls inside this group's range
        groups.append(g)
    table = pf.read_row_groups(groups, columns=columns).unify_dictionaries().combine_chunks()
    if len(table) == 0:
        return _finish(table), np.zeros(0, dtype=np.int64)
    ts = table.column("ts_ms").to_numpy()
    # Row groups without statistics reach here unchecked; check their values.
    check_epoch_ms(int(ts.min()), int(ts.max()), str(path), "ts_ms")
    chain, mint = table.column("chain").chunk(0), table.column("mint").chunk(0)
    chains_here, mints_here = chain.dictionary.to_pylist(), mint.dictionary.to_pylist()
    # Which (chain, mint) dictionary pairs were asked for: a small table, then one lookup per row.
    allowed = np.array([[(c, m) in pairs for m in mints_here] for c in chains_here], dtype=bool)
    ci = chain.indices.fill_null(0).to_numpy()
    mi = mint.indices.fill_null(0).to_numpy()
    valid = np.asarray(chain.is_valid()) & np.asarray(mint.is_valid())
    keep = allowed[ci, mi] & valid & (ts >= start_ms) & (ts < end_ms)
    table = table.filter(pa.array(keep))
    if len(table) == 0:  # groups read on their statistics alone may hold no wanted row
        return _finish(table), np.zeros(0, dtype=np.int64)
    key = order.keys(table.column("chain").chunk(0), table.column("mint").chunk(0), ts[keep])
    return _finish(table), key


def _as_str(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def check_candle_source(source: CandleSource, start_ms: int, end_ms: int) -> list[str]:
    """The structural checks of `load_candles`, on a sample, before any run: notes to print.

    Parquet: the schema of the window's files (at most _CHECK_FILES of them,
    or the first file when none is in the window) and their row-group ts_ms
    statistics (or the first row group's values). DuckDB: the table's columns
    and the ts_ms of its first _CHECK_ROWS rows. Raises SourceError.
    """
    check_window(start_ms, end_ms)
    where = source.where
    found: set[str] = set()
    if source.kind == "duckdb":
        if source.path.is_file() and source.path.stat().st_size == 0:
            raise SourceError(f"{where}: the file is empty")
        con = connect_read_only(source.path, where)
        try:
            relation = table_ref(con, source.table, where)
            columns = {
                r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
            }
            check_columns(columns, REQUIRED, OPTIONAL, where)
            lo, hi, bad, rows = con.execute(
                "SELECT min(ts_ms), max(ts_ms), count(*) FILTER (WHERE ts_ms < ? OR ts_ms >= ?),"
                f" count(*) FROM (SELECT ts_ms FROM {relation} LIMIT {_CHECK_ROWS})",
                [MIN_EPOCH_MS, MAX_EPOCH_MS],
            ).fetchall()[0]
        except duckdb.Error as exc:
            raise SourceError(f"{where}: cannot read: {exc}") from exc
        finally:
            con.close()
        if rows == 0:
            raise SourceError(f"{where}: no candles (the table has no rows)")
        check_epoch_ms(lo, hi, where, "ts_ms", bad)
        found = set(columns)
    else:
        files = parquet_files(source.path)
        if not files:
            raise SourceError(f"{where}: no .parquet files")
        first, last = _window_dates(start_ms, end_ms)
        chosen = [f for f in files if _in_window_dates(f, source.path, first, last)] or files[:1]
        if len(chosen) > _CHECK_FILES:
            step = len(chosen) / _CHECK_FILES
            chosen = [chosen[int(i * step)] for i in range(_CHECK_FILES)]
        rows = 0
        for path in chosen:
            found |= set(_parquet_columns(path))
            rows += _check_parquet_timestamps(path)
        if rows == 0 and len(files) == len(chosen):
            raise SourceError(f"{where}: no candles (its Parquet files hold no rows)")
    if "interval" not in found:
        return [
            f"{where}: no 'interval' column; its bars are taken as {ASSUMED_INTERVAL} bars"
            " (add an interval column if they are not)"
        ]
    return []


def _check_parquet_timestamps(path: Path) -> int:
    """ts_ms in epoch milliseconds: row-group statistics, else the first row group's values.

    Returns the file's row count.
    """
    try:
        pf = pq.ParquetFile(path)
        meta = pf.metadata
        names = [meta.schema.column(i).name for i in range(meta.num_columns)]
        ts_col = names.index("ts_ms")
        unchecked = False
        for g in range(meta.num_row_groups):
            stats = meta.row_group(g).column(ts_col).statistics
            if stats is not None and stats.has_min_max:
                check_epoch_ms(int(stats.min), int(stats.max), str(path), "ts_ms")
            else:
                unchecked = True
        if unchecked and meta.num_row_groups:
            ts = pf.read_row_group(0, columns=["ts_ms"]).column("ts_ms").drop_null()
            if len(ts):
                lo, hi = pc.min_max(ts).values()
                check_epoch_ms(lo.as_py(), hi.as_py(), str(path), "ts_ms")
        return int(meta.num_rows)
    except (OSError, pa.ArrowException) as exc:
        raise SourceError(f"{path}: not a readable Parquet file: {exc}") from exc
