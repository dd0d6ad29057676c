"""Loading calls (alerts) for a time window, with every rejected row accounted for.

Every input row ends in exactly one place: the calls of the window it
belongs to, or that window's rejects with a reason:

- `missing_value`: call_id, mint, caller_name or chain null or blank, or
  alert_ts_ms null. A row without alert_ts_ms belongs to the window holding
  its created_at if that parses, else to the window holding the source's
  earliest valid alert_ts_ms (so it is reported once, not once per window).
- `duplicate_call_id`: an identical copy (all six columns equal) of another
  row; one copy is kept, the others rejected.
- `conflicting_call_id`: a call_id shared by rows that differ in any column;
  every copy is rejected, since no rule can tell which one is true.

Duplicates are judged over the whole source, not only the window, so a
call_id reused on another day is caught on both days.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from quantbot_assets.schemas import ALERTS, ERRORS
from quantbot_assets.sources.access import (
    MAX_EPOCH_MS,
    MIN_EPOCH_MS,
    CallsSource,
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
    "call_id": "string",
    "mint": "string",
    "caller_name": "string",
    "chain": "string",
    "alert_ts_ms": "integer",
}
OPTIONAL: dict[str, ColumnKind] = {"created_at": "string"}
REJECTS_SCHEMA = pa.schema([f for f in ERRORS if f.name not in ("run_id", "day")])
_STRING_COLUMNS = ("call_id", "mint", "caller_name", "chain")


@dataclass(frozen=True)
class CallsLoad:
    calls: pd.DataFrame  # exactly ALERTS columns, sorted by (alert_ts_ms, call_id)
    rejects: pd.DataFrame  # REJECTS_SCHEMA columns, one row per rejected input row


class CallsSummary(TypedDict):
    source: str
    count: int  # input rows, valid or not
    min_alert_ts_ms: int | None
    max_alert_ts_ms: int | None
    first_day: str | None  # UTC dates of the above, YYYY-MM-DD
    last_day: str | None
    callers: list[str]
    undated: int  # rows without alert_ts_ms


@dataclass
class _Opened:
    con: duckdb.DuckDBPyConnection
    relation: str  # a quoted table name or the fixed view name below

    def close(self) -> None:
        self.con.close()


_VIEW = "calls_source"


def _open(source: CallsSource) -> _Opened:
    """Connect, check the columns and their types, and name the rows as one relation."""
    where = source.where
    if not source.path.exists():
        raise SourceError(f"{where}: no such file or directory")
    if source.kind == "duckdb":
        con = connect_read_only(source.path, where)
        try:
            relation = table_ref(con, source.table, where)
            found = {
                r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
            }
            check_columns(found, REQUIRED, OPTIONAL, where)
        except BaseException:
            con.close()
            raise
        return _Opened(con, relation)
    con = duckdb.connect()
    try:
        if source.kind == "parquet":
            files = parquet_files(source.path)
            if not files:
                raise SourceError(f"{where}: no .parquet files")
            rel = con.read_parquet([str(f) for f in files], union_by_name=True)
        else:
            # Sniff every row (sample_size=-1) so one odd value deep in the file
            # shows up as a wrong column type here rather than a cast error later.
            rel = con.read_csv(str(source.path), header=True, sample_size=-1)
            strings = {c: "VARCHAR" for c in (*_STRING_COLUMNS, "created_at") if c in rel.columns}
            # Ids and names that happen to look numeric stay strings.
            rel = con.read_csv(str(source.path), header=True, sample_size=-1, dtype=strings)
        found = dict(zip(rel.columns, (str(t) for t in rel.types), strict=True))
        check_columns(found, REQUIRED, OPTIONAL, where)
        rel.create_view(_VIEW)
    except duckdb.Error as exc:
        con.close()
        raise SourceError(f"{where}: cannot read: {exc}") from exc
    except BaseException:
        con.close()
        raise
    return _Opened(con, _VIEW)


def _check_timestamps(opened: _Opened, where: str) -> tuple[int, int | None, int | None, int]:
    """(rows, min, max, undated) over the whole source; raises on non-millisecond values."""
    count, lo, hi, bad, undated = opened.con.execute(
        "SELECT count(*), min(alert_ts_ms), max(alert_ts_ms),"
        " count(*) FILTER (WHERE alert_ts_ms < ? OR alert_ts_ms >= ?),"
        " count(*) FILTER (WHERE alert_ts_ms IS NULL)"
        f" FROM {opened.relation}",
        [MIN_EPOCH_MS, MAX_EPOCH_MS],
    ).fetchall()[0]
    check_epoch_ms(lo, hi, where, "alert_ts_ms", bad)
    if count and lo is None:
        raise SourceError(f"{where}: column 'alert_ts_ms' is null in every row")
    return int(count), lo, hi, int(undated)


def _select_sql(relation: str, has_created_at: bool) -> str:
    created = "CAST(created_at AS VARCHAR)" if has_created_at else "CAST(NULL AS VARCHAR)"
    missing = " ".join(
        f"WHEN {c} IS NULL OR trim({c}) = '' THEN '{c} is null or blank'" for c in _STRING_COLUMNS
    )
    same = "call_id, mint, caller_name, chain, alert_ts_ms, created_at"
    # Pieces above are constants of this module; `relation` is a catalog-checked
    # quoted name or a fixed view name; user values only travel as parameters.
    return f"""
WITH src AS (
    SELECT CAST(call_id AS VARCHAR) AS call_id, CAST(mint AS VARCHAR) AS mint,
           CAST(caller_name AS VARCHAR) AS caller_name, CAST(chain AS VARCHAR) AS chain,
           CAST(alert_ts_ms AS BIGINT) AS alert_ts_ms, {created} AS created_at
    FROM {relation}
),
flagged AS (
    SELECT *,
        count(*) OVER (PARTITION BY call_id) AS n_id,
        count(*) OVER (PARTITION BY {same}) AS n_same,
        row_number() OVER (PARTITION BY {same}) AS k_same,
        coalesce(alert_ts_ms, epoch_ms(TRY_CAST(created_at AS TIMESTAMPTZ)), ?) AS place_ms
    FROM src
),
judged AS (
    SELECT *,
        CASE {missing}
             WHEN alert_ts_ms IS NULL THEN 'alert_ts_ms is null'
             ELSE NULL END AS missing
    FROM flagged
    WHERE place_ms >= ? AND place_ms < ?
)
SELECT call_id, mint, caller_name, chain, alert_ts_ms, created_at,
    CASE WHEN missing IS NOT NULL THEN 'missing_value'
         WHEN n_id > n_same THEN 'conflicting_call_id'
         WHEN k_same > 1 THEN 'duplicate_call_id' END AS reason,
    CASE WHEN missing IS NOT NULL THEN missing
         WHEN n_id > n_same THEN 'call_id appears in ' || n_id
              || ' rows that differ; every copy rejected'
         WHEN k_same > 1 THEN 'identical copy of another row (' || n_same
              || ' copies); one kept' END AS detail,
    place_ms
FROM judged
ORDER BY place_ms, call_id, k_same
"""


def load_calls(source: CallsSource, start_ms: int, end_ms: int) -> CallsLoad:
    """Calls with alert_ts_ms in [start_ms, end_ms), and the window's rejected rows."""
    check_window(start_ms, end_ms)
    where = source.where
    opened = _open(source)
    try:
        _, lo, _, _ = _check_timestamps(opened, where)
        columns = [r[0] for r in opened.con.execute(f"DESCRIBE {opened.relation}").fetchall()]
        sql = _select_sql(opened.relation, "created_at" in columns)
        rows = opened.con.sql(sql, params=[lo, start_ms, end_ms]).to_arrow_table()
    except duckdb.Error as exc:
        raise SourceError(f"{where}: cannot read: {exc}") from exc
    finally:
        opened.close()
    rejected = pc.is_valid(rows.column("reason"))
    good = rows.filter(pc.invert(rejected))
    bad = rows.filter(rejected)
    calls = good.select(ALERTS.names).cast(ALERTS)
    rejects = pa.table(
        {
            "stage": pa.array(["alerts"] * len(bad), pa.string()),
            "level": pa.array(["warning"] * len(bad), pa.string()),
            "reason": bad.column("reason"),
            "call_id": bad.column("call_id"),
            "chain": bad.column("chain"),
            "mint": bad.column("mint"),
            "ts_ms": bad.column("alert_ts_ms"),
            "source": pa.array([where] * len(bad), pa.string()),
            "detail": bad.column("detail"),
        }
    ).cast(REJECTS_SCHEMA)
    return CallsLoad(calls=calls.to_pandas(), rejects=rejects_frame(rejects))


def rejects_frame(table: pa.Table) -> pd.DataFrame:
    """Rejects as pandas with a nullable integer ts_ms (a float would lose exact ms)."""
    return table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)


def check_calls_source(source: CallsSource) -> int:
    """The structural checks of `load_calls`, over the whole source, before any run: row count.

    Raises SourceError for an empty file, a CSV with a header and no rows, a
    missing or mistyped column, timestamps not in epoch milliseconds, or a
    source without rows.
    """
    where = source.where
    if source.path.is_file() and source.path.stat().st_size == 0:
        raise SourceError(f"{where}: the file is empty")
    if source.kind == "csv" and source.path.is_file():
        with source.path.open("rb") as handle:
            lines = [line for _, line in zip(range(2), handle, strict=False) if line.strip()]
        if len(lines) < 2:
            raise SourceError(f"{where}: no rows (a CSV needs a header line and calls below it)")
    opened = _open(source)
    try:
        count, _, _, _ = _check_timestamps(opened, where)
    except duckdb.Error as exc:
        raise SourceError(f"{where}: cannot read: {exc}") from exc
    finally:
        opened.close()
    if count == 0:
        raise SourceError(f"{where}: no calls (the source has no rows)")
    return count


def describe_calls(source: CallsSource) -> CallsSummary:
    """Row count, time range and callers of a calls source: for picking date ranges."""
    where = source.where
    opened = _open(source)
    try:
        count, lo, hi, undated = _check_timestamps(opened, where)
        callers = [
            r[0]
            for r in opened.con.execute(
                f"SELECT DISTINCT CAST(caller_name AS VARCHAR) AS c FROM {opened.relation}"
                " WHERE caller_name IS NOT NULL AND trim(CAST(caller_name AS VARCHAR)) <> ''"
                " ORDER BY c"
            ).fetchall()
        ]
    except duckdb.Error as exc:
        raise SourceError(f"{where}: cannot read: {exc}") from exc
    finally:
        opened.close()
    return CallsSummary(
        source=where,
        count=count,
        min_alert_ts_ms=lo,
        max_alert_ts_ms=hi,
        first_day=_day(lo),
        last_day=_day(hi),
        callers=callers,
        undated=undated,
    )


def _day(ts_ms: int | None) -> str | None:
    if ts_ms is None:
        return None
    return pd.Timestamp(ts_ms, unit="ms", tz="UTC").strftime("%Y-%m-%d")
