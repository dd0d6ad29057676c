"""Calls and candle sources: every bad-input class, per file kind, and pruned candle reads."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from quantbot_assets.schemas import ALERTS
from quantbot_assets.sources.access import (
    CANDLE_SCHEMA,
    CallsSource,
    CandleSource,
    SourceError,
    calls_source_from_path,
    candle_source_from_path,
)
from quantbot_assets.sources.calls import REJECTS_SCHEMA, describe_calls, load_calls
from quantbot_assets.sources.candles import load_candles

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
DAY = 86_400_000
M = 60_000


def call_rows(n: int = 4) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "call_id": [f"c{i}" for i in range(n)],
            "mint": [f"Mint{i % 2}" for i in range(n)],
            "caller_name": [f"caller{i % 3}" for i in range(n)],
            "chain": ["solana"] * n,
            "alert_ts_ms": [T0 + i * 3_600_000 for i in range(n)],
            "created_at": [
                pd.Timestamp(T0 + i * 3_600_000, unit="ms", tz="UTC").isoformat() for i in range(n)
            ],
        }
    )


def write_calls(frame: pd.DataFrame, tmp_path: Path, kind: str, table: str = "alerts") -> Path:
    """Write `frame` as a calls file of `kind`, keeping its column types."""
    if kind == "csv":
        path = tmp_path / "calls.csv"
        frame.to_csv(path, index=False)
    elif kind == "parquet":
        path = tmp_path / "calls.parquet"
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    else:
        path = tmp_path / "calls.duckdb"
        con = duckdb.connect(str(path))
        con.register("frame", pa.Table.from_pandas(frame, preserve_index=False))
        con.execute(f'CREATE TABLE "{table}" AS SELECT * FROM frame')
        con.close()
    return path


def load(path: Path, start: int = T0, end: int = T0 + DAY, table: str = "alerts"):
    return load_calls(calls_source_from_path(path, table), start, end)


KINDS = ["csv", "parquet", "duckdb"]


@pytest.mark.parametrize("kind", KINDS)
def test_valid_calls_load_with_alerts_columns_in_order(tmp_path: Path, kind: str) -> None:
    frame = call_rows(6).iloc[::-1]  # stored out of order
    path = write_calls(frame, tmp_path, kind)
    out = load(path, T0 + 3_600_000, T0 + 5 * 3_600_000)
    assert list(out.calls.columns) == ALERTS.names
    assert list(out.calls["call_id"]) == ["c1", "c2", "c3", "c4"]
    assert out.calls["alert_ts_ms"].dtype == np.int64
    assert pa.Table.from_pandas(out.calls, preserve_index=False).cast(ALERTS).num_rows == 4
    assert out.rejects.empty and list(out.rejects.columns) == REJECTS_SCHEMA.names


def test_csv_numeric_looking_ids_stay_strings(tmp_path: Path) -> None:
    frame = call_rows(3)
    frame["call_id"] = ["001", "002", "003"]
    out = load(write_calls(frame, tmp_path, "csv"))
    assert list(out.calls["call_id"]) == ["001", "002", "003"]


def test_created_at_is_optional(tmp_path: Path) -> None:
    out = load(write_calls(call_rows(2).drop(columns="created_at"), tmp_path, "parquet"))
    assert len(out.calls) == 2 and out.calls["created_at"].isna().all()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("column", ["call_id", "mint", "caller_name", "chain", "alert_ts_ms"])
def test_missing_column_names_file_and_column(tmp_path: Path, kind: str, column: str) -> None:
    path = write_calls(call_rows().drop(columns=column), tmp_path, kind)
    with pytest.raises(SourceError) as err:
        load(path)
    assert str(path) in str(err.value) and f"missing column {column!r}" in str(err.value)


def test_missing_column_hints_at_case(tmp_path: Path) -> None:
    path = write_calls(call_rows().rename(columns={"mint": "Mint"}), tmp_path, "parquet")
    with pytest.raises(SourceError, match="found 'Mint'"):
        load(path)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "bad_ts",
    [
        ["2024-01-01 00:00:00", "2024-01-01 01:00:00", "2024-01-01 02:00:00", "x"],  # strings
        [T0 + 0.5, T0 + 1.5, T0 + 2.5, T0 + 3.5],  # floats
    ],
)
def test_wrong_timestamp_type_names_column(tmp_path: Path, kind: str, bad_ts: list) -> None:
    frame = call_rows()
    frame["alert_ts_ms"] = bad_ts
    path = write_calls(frame, tmp_path, kind)
    with pytest.raises(SourceError) as err:
        load(path)
    assert str(path) in str(err.value) and "column 'alert_ts_ms' has type" in str(err.value)


@pytest.mark.parametrize("kind", ["parquet", "duckdb"])
def test_wrong_string_type_names_column(tmp_path: Path, kind: str) -> None:
    frame = call_rows()
    frame["mint"] = [1, 2, 3, 4]
    path = write_calls(frame, tmp_path, kind)
    with pytest.raises(SourceError, match="column 'mint' has type"):
        load(path)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("scale", "unit"), [(1000, "seconds"), (1 / 1000, "microseconds")])
def test_timestamps_not_in_milliseconds_are_refused(
    tmp_path: Path, kind: str, scale: float, unit: str
) -> None:
    frame = call_rows()
    frame["alert_ts_ms"] = (frame["alert_ts_ms"] // scale).astype("int64")
    path = write_calls(frame, tmp_path, kind)
    with pytest.raises(SourceError) as err:
        load(path)
    message = str(err.value)
    assert str(path) in message and "'alert_ts_ms'" in message and unit in message


def test_one_seconds_value_among_milliseconds_is_refused(tmp_path: Path) -> None:
    frame = call_rows()
    frame.loc[2, "alert_ts_ms"] = T0 // 1000
    with pytest.raises(SourceError, match=r"1 value\(s\) outside epoch milliseconds"):
        load(write_calls(frame, tmp_path, "duckdb"))


@pytest.mark.parametrize("kind", KINDS)
def test_identical_duplicates_keep_one_copy(tmp_path: Path, kind: str) -> None:
    frame = call_rows(3)
    frame = pd.concat([frame, frame.iloc[[1, 1]]], ignore_index=True)
    out = load(write_calls(frame, tmp_path, kind))
    assert list(out.calls["call_id"]) == ["c0", "c1", "c2"]
    assert list(out.rejects["reason"]) == ["duplicate_call_id"] * 2
    assert list(out.rejects["call_id"]) == ["c1", "c1"]
    assert (out.rejects["stage"] == "alerts").all() and (out.rejects["level"] == "warning").all()
    assert out.rejects["source"].str.contains("calls.").all()


@pytest.mark.parametrize("kind", KINDS)
def test_conflicting_duplicates_reject_every_copy_even_across_days(
    tmp_path: Path, kind: str
) -> None:
    frame = call_rows(3)
    other = frame.iloc[[1]].assign(mint="OtherMint", alert_ts_ms=T0 + DAY + 5)
    path = write_calls(pd.concat([frame, other], ignore_index=True), tmp_path, kind)
    day1, day2 = load(path), load(path, T0 + DAY, T0 + 2 * DAY)
    assert list(day1.calls["call_id"]) == ["c0", "c2"]
    assert list(day1.rejects["reason"]) == ["conflicting_call_id"]
    assert day2.calls.empty and list(day2.rejects["mint"]) == ["OtherMint"]
    assert list(day2.rejects["reason"]) == ["conflicting_call_id"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("column", "value"), [("mint", None), ("caller_name", " "), ("chain", "")])
def test_missing_values_become_rejects(tmp_path: Path, kind: str, column: str, value) -> None:
    frame = call_rows(3)
    frame[column] = frame[column].astype(object)
    frame.loc[1, column] = value
    out = load(write_calls(frame, tmp_path, kind))
    assert list(out.calls["call_id"]) == ["c0", "c2"]
    assert out.rejects[["reason", "call_id"]].values.tolist() == [["missing_value", "c1"]]
    assert column in out.rejects["detail"].iloc[0]


def test_null_timestamp_is_reported_once_in_the_window_of_its_created_at(tmp_path: Path) -> None:
    frame = call_rows(3)
    frame["alert_ts_ms"] = frame["alert_ts_ms"].astype("Int64")
    frame.loc[1, "alert_ts_ms"] = pd.NA
    frame.loc[1, "created_at"] = "2024-01-02T05:00:00+02:00"  # 03:00Z on day two
    frame.loc[2, "alert_ts_ms"] = pd.NA
    frame.loc[2, "created_at"] = "not a date"  # falls back to the earliest valid alert
    path = write_calls(frame, tmp_path, "duckdb")
    day1, day2 = load(path), load(path, T0 + DAY, T0 + 2 * DAY)
    assert list(day1.rejects["call_id"]) == ["c2"] and list(day2.rejects["call_id"]) == ["c1"]
    assert set(day1.rejects["reason"]) | set(day2.rejects["reason"]) == {"missing_value"}
    assert day2.rejects["ts_ms"].isna().all()


def test_every_row_ends_in_exactly_one_place(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    n = 300
    frame = pd.DataFrame(
        {
            "call_id": [f"c{i}" for i in rng.integers(0, 220, n)],  # many repeats
            "mint": rng.choice(["A", "B", None, ""], n, p=[0.5, 0.4, 0.05, 0.05]),
            "caller_name": rng.choice(["x", "y", "z"], n),
            "chain": "solana",
            "alert_ts_ms": T0 + rng.integers(0, 3, n) * DAY + rng.integers(0, 5, n),
            "created_at": None,
        }
    )
    path = write_calls(frame, tmp_path, "duckdb")
    loads = [load(path, T0 + d * DAY, T0 + (d + 1) * DAY) for d in range(3)]
    assert sum(len(x.calls) + len(x.rejects) for x in loads) == n
    kept = pd.concat([x.calls for x in loads])
    assert kept["call_id"].is_unique
    reasons = set(pd.concat([x.rejects for x in loads])["reason"])
    assert reasons == {"missing_value", "duplicate_call_id", "conflicting_call_id"}


def test_duckdb_view_and_schema_qualified_names(tmp_path: Path) -> None:
    path = write_calls(call_rows(3), tmp_path, "duckdb", table="raw calls")
    con = duckdb.connect(str(path))
    con.execute("CREATE VIEW alerts AS SELECT * FROM \"raw calls\" WHERE call_id <> 'c0'")
    con.close()
    assert list(load(path).calls["call_id"]) == ["c1", "c2"]
    assert len(load(path, table="main.raw calls").calls) == 3


@pytest.mark.parametrize("table", ["nope", 'alerts"; DROP TABLE alerts; --', "other.alerts"])
def test_unknown_table_is_named_and_nothing_is_executed(tmp_path: Path, table: str) -> None:
    path = write_calls(call_rows(3), tmp_path, "duckdb")
    with pytest.raises(SourceError) as err:
        load(path, table=table)
    assert str(path) in str(err.value) and repr(table) in str(err.value)
    assert len(load(path).calls) == 3


def test_source_kinds_from_paths(tmp_path: Path) -> None:
    (tmp_path / "a.db").touch()
    (tmp_path / "b.csv").touch()
    (tmp_path / "c.txt").touch()
    assert calls_source_from_path(tmp_path / "a.db").kind == "duckdb"
    assert calls_source_from_path(tmp_path / "b.csv") == CallsSource("csv", tmp_path / "b.csv")
    with pytest.raises(SourceError, match="cannot tell the file kind"):
        calls_source_from_path(tmp_path / "c.txt")
    with pytest.raises(SourceError, match="no such file"):
        calls_source_from_path(tmp_path / "missing.duckdb")
    with pytest.raises(SourceError, match="cannot tell the file kind"):
        candle_source_from_path(tmp_path / "b.csv")  # candles: Parquet or DuckDB only
    with pytest.raises(SourceError, match=r"without \.parquet files"):
        candle_source_from_path(tmp_path)


def test_not_a_duckdb_file_is_a_source_error(tmp_path: Path) -> None:
    path = tmp_path / "calls.duckdb"
    path.write_text("hello")
    with pytest.raises(SourceError, match="cannot open the DuckDB database"):
        load(path)


def test_describe_calls(tmp_path: Path) -> None:
    frame = call_rows(4)
    frame.loc[3, "alert_ts_ms"] = T0 + 2 * DAY
    summary = describe_calls(calls_source_from_path(write_calls(frame, tmp_path, "csv")))
    assert summary["count"] == 4
    assert (summary["min_alert_ts_ms"], summary["max_alert_ts_ms"]) == (T0, T0 + 2 * DAY)
    assert (summary["first_day"], summary["last_day"]) == ("2024-01-01", "2024-01-03")
    assert summary["callers"] == ["caller0", "caller1", "caller2"]


# ---- candles ---------------------------------------------------------------


def bars(mint: str, chain: str, start_ms: int, minutes: int) -> pd.DataFrame:
    ts = start_ms + np.arange(minutes, dtype=np.int64) * M
    price = 1.0 + np.arange(minutes) / 100
    return pd.DataFrame(
        {
            "chain": chain,
            "mint": mint,
            "interval": "1m",
            "ts_ms": ts,
            "open": price,
            "high": price * 1.1,
            "low": price * 0.9,
            "close": price,
            "volume": 10.0,
        }
    )


@pytest.fixture
def all_bars() -> pd.DataFrame:
    # Four mints over three days (bars every 30 minutes), one mint on two chains.
    parts = [
        bars(mint, chain, T0 - 3_600_000, 3 * 48 + 2)
        for mint, chain in [("A", "solana"), ("B", "solana"), ("C", "solana"), ("A", "eth")]
    ]
    frame = pd.concat(parts, ignore_index=True)
    frame["ts_ms"] = T0 - 3_600_000 + (frame["ts_ms"] - T0 + 3_600_000) * 30
    return frame


def write_dataset(frame: pd.DataFrame, root: Path, *, hive: bool = True) -> Path:
    """One file per UTC date, sorted by (chain, mint, ts_ms), small row groups."""
    day = pd.to_datetime(frame["ts_ms"], unit="ms", utc=True).dt.strftime("%Y-%m-%d")
    for i, (d, part) in enumerate(frame.groupby(day)):
        out = root / f"date={d}" / "part-0.parquet" if hive else root / f"part-{i}.parquet"
        out.parent.mkdir(parents=True, exist_ok=True)
        part = part.sort_values(["chain", "mint", "ts_ms"])
        table = pa.Table.from_pandas(part, preserve_index=False).cast(CANDLE_SCHEMA)
        pq.write_table(table, out, row_group_size=20)
    return root


def write_candle_db(frame: pd.DataFrame, path: Path) -> Path:
    con = duckdb.connect(str(path))
    con.register("frame", pa.Table.from_pandas(frame, preserve_index=False))
    con.execute("CREATE TABLE candles AS SELECT * FROM frame")
    con.close()
    return path


def expected(
    frame: pd.DataFrame, keys: list[tuple[str, str]], start: int, end: int
) -> pd.DataFrame:
    pairs = list(zip(frame["chain"], frame["mint"], strict=True))
    mask = (
        pd.Series([p in keys for p in pairs]) & (frame["ts_ms"] >= start) & (frame["ts_ms"] < end)
    )
    return frame[mask.to_numpy()].sort_values(["chain", "mint", "ts_ms"]).reset_index(drop=True)


def keyframe(keys: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(keys, columns=["chain", "mint"])


@pytest.mark.parametrize("layout", ["hive", "flat", "file", "duckdb"])
@pytest.mark.parametrize(
    ("keys", "start", "end"),
    [
        ([("solana", "A"), ("solana", "C")], T0 + 7 * M, T0 + DAY + 3 * M),
        ([("eth", "A")], T0 - 3_600_000, T0 + 3 * DAY),
        ([("solana", "B"), ("eth", "Z")], T0 + DAY, T0 + DAY + 1),
        ([("solana", "Z")], T0, T0 + DAY),
        ([("solana", "AB")], T0, T0 + DAY),  # inside a row group's mint range, yet absent
    ],
)
def test_load_candles_returns_exactly_the_requested_series_and_window(
    tmp_path: Path, all_bars: pd.DataFrame, layout: str, keys: list, start: int, end: int
) -> None:
    if layout == "duckdb":
        source = candle_source_from_path(write_candle_db(all_bars, tmp_path / "c.duckdb"))
    elif layout == "file":
        path = tmp_path / "c.parquet"
        pq.write_table(pa.Table.from_pandas(all_bars, preserve_index=False), path)
        source = candle_source_from_path(path)
    else:
        source = candle_source_from_path(
            write_dataset(all_bars, tmp_path / "d", hive=layout == "hive")
        )
    got = load_candles(source, keyframe(keys), start, end)
    assert list(got.columns) == CANDLE_SCHEMA.names
    assert got["ts_ms"].dtype == np.int64 and got["open"].dtype == np.float64
    pd.testing.assert_frame_equal(
        got, expected(all_bars, keys, start, end), check_dtype=False, check_index_type=False
    )


def test_dates_outside_the_window_are_never_opened(tmp_path: Path, all_bars: pd.DataFrame) -> None:
    root = write_dataset(all_bars, tmp_path / "d")
    (root / "date=2024-01-03" / "part-0.parquet").write_text("not parquet")
    keys = keyframe([("solana", "A")])
    got = load_candles(CandleSource("parquet", root), keys, T0, T0 + DAY)
    assert len(got) == 48
    with pytest.raises(SourceError, match="date=2024-01-03"):
        load_candles(CandleSource("parquet", root), keys, T0, T0 + 3 * DAY)


def test_interval_filter_and_optional_volume(tmp_path: Path) -> None:
    frame = pd.concat(
        [bars("A", "solana", T0, 5), bars("A", "solana", T0, 5).assign(interval="5m")]
    )
    path = tmp_path / "c.parquet"
    pq.write_table(pa.Table.from_pandas(frame.drop(columns="volume"), preserve_index=False), path)
    got = load_candles(
        CandleSource("parquet", path), keyframe([("solana", "A")]), T0, T0 + DAY, interval="5m"
    )
    assert len(got) == 5 and set(got["interval"]) == {"5m"} and got["volume"].isna().all()


def test_row_level_problems_are_kept_for_the_engine(tmp_path: Path) -> None:
    frame = bars("A", "solana", T0, 6)
    frame.loc[1, "close"] = np.nan
    frame.loc[2, "open"] = 0.0
    frame.loc[3, ["high", "low"]] = [0.5, 2.0]
    frame = pd.concat([frame, frame.iloc[[4]].assign(close=9.0)]).iloc[::-1]  # dup + unsorted
    for source in (
        CandleSource("duckdb", write_candle_db(frame, tmp_path / "c.duckdb")),
        CandleSource("parquet", write_dataset(frame, tmp_path / "d")),
    ):
        got = load_candles(source, keyframe([("solana", "A")]), T0, T0 + DAY)
        assert len(got) == 7 and got["ts_ms"].is_monotonic_increasing
        assert got["close"].isna().sum() == 1 and (got["high"] < got["low"]).sum() == 1
        assert got["ts_ms"].duplicated().sum() == 1


@pytest.mark.parametrize("kind", ["parquet", "duckdb"])
@pytest.mark.parametrize(
    ("change", "column", "message"),
    [
        ({"drop": "high"}, "high", "missing column 'high'"),
        ({"ts_ms": lambda f: f["ts_ms"].astype(float)}, "ts_ms", "has type"),
        ({"open": lambda f: f["open"].astype(str)}, "open", "has type"),
        ({"mint": lambda f: np.arange(len(f))}, "mint", "has type"),
        ({"ts_ms": lambda f: f["ts_ms"] // 1000}, "ts_ms", "seconds"),
        ({"ts_ms": lambda f: f["ts_ms"] * 1_000_000}, "ts_ms", "nanoseconds"),
    ],
)
def test_candle_structure_errors_name_file_and_column(
    tmp_path: Path, kind: str, change: dict, column: str, message: str
) -> None:
    frame = bars("A", "solana", T0, 5)
    frame = frame.drop(columns=change["drop"]) if "drop" in change else frame.assign(**change)
    if kind == "duckdb":
        path = write_candle_db(frame, tmp_path / "c.duckdb")
    else:
        path = tmp_path / "c.parquet"
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    with pytest.raises(SourceError) as err:
        load_candles(candle_source_from_path(path), keyframe([("solana", "A")]), T0, T0 + DAY)
    assert str(path) in str(err.value) and repr(column) in str(err.value)
    assert message in str(err.value)


def test_missing_candle_table_is_named(tmp_path: Path) -> None:
    path = write_candle_db(bars("A", "solana", T0, 2), tmp_path / "c.duckdb")
    with pytest.raises(SourceError, match="no table or view named 'bars'"):
        load_candles(
            CandleSource("duckdb", path, "bars"), keyframe([("solana", "A")]), T0, T0 + DAY
        )


def test_window_in_seconds_is_a_caller_bug(tmp_path: Path) -> None:
    path = write_candle_db(bars("A", "solana", T0, 2), tmp_path / "c.duckdb")
    with pytest.raises(ValueError, match="epoch milliseconds"):
        load_candles(CandleSource("duckdb", path), keyframe([("solana", "A")]), T0 // 1000, T0)


@pytest.mark.parametrize("layout", ["hive", "duckdb"])
def test_empty_window_or_keys_select_nothing(
    tmp_path: Path, all_bars: pd.DataFrame, layout: str
) -> None:
    if layout == "duckdb":
        source = CandleSource("duckdb", write_candle_db(all_bars, tmp_path / "c.duckdb"))
    else:
        source = CandleSource("parquet", write_dataset(all_bars, tmp_path / "d"))
    for keys, start, end in [(keyframe([("solana", "A")]), 0, 0), (keyframe([]), T0, T0 + DAY)]:
        got = load_candles(source, keys, start, end)
        assert got.empty and list(got.columns) == CANDLE_SCHEMA.names


@pytest.mark.parametrize("layout", ["hive", "duckdb"])
def test_categorical_output_holds_the_same_rows(
    tmp_path: Path, all_bars: pd.DataFrame, layout: str
) -> None:
    if layout == "duckdb":
        source = CandleSource("duckdb", write_candle_db(all_bars, tmp_path / "c.duckdb"))
    else:
        source = CandleSource("parquet", write_dataset(all_bars, tmp_path / "d"))
    keys = keyframe([("solana", "A"), ("eth", "A"), ("solana", "C")])
    plain = load_candles(source, keys, T0, T0 + 2 * DAY)
    cat = load_candles(source, keys, T0, T0 + 2 * DAY, categorical=True)
    assert all(isinstance(cat[c].dtype, pd.CategoricalDtype) for c in ("chain", "mint", "interval"))
    pd.testing.assert_frame_equal(cat.astype({"chain": str, "mint": str, "interval": str}), plain)
