"""The sample data generator: layout, contents, determinism, and ensure's marker logic."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest

from quantbot_assets.sample_data import (
    MARKER_FILE,
    ROW_GROUP_ROWS,
    SampleData,
    ensure_sample_data,
    generate_sample_data,
)
from quantbot_assets.sources.access import CANDLE_SCHEMA, CallsSource
from quantbot_assets.sources.calls import load_calls

TINY = {"days": 2, "calls_per_day": 60, "n_callers": 6, "start": date(2024, 1, 1)}
T0 = 1_704_067_200_000
DAY = 86_400_000


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleData:
    return generate_sample_data(tmp_path_factory.mktemp("sample"), **TINY)


def alerts(data: SampleData) -> pd.DataFrame:
    con = duckdb.connect(str(data.alerts_db), read_only=True)
    try:
        return con.sql("SELECT * FROM alerts").df()
    finally:
        con.close()


def candles(data: SampleData) -> pd.DataFrame:
    return pq.read_table(data.candles_dir, partitioning=None).to_pandas()


def parquet_bytes(data: SampleData) -> dict[str, bytes]:
    return {
        str(p.relative_to(data.candles_dir)): p.read_bytes()
        for p in sorted(data.candles_dir.rglob("*.parquet"))
    }


def test_alerts_table_has_the_seed_columns_and_enough_calls(sample: SampleData) -> None:
    con = duckdb.connect(str(sample.alerts_db), read_only=True)
    types = dict(
        con.execute("SELECT column_name, data_type FROM information_schema.columns").fetchall()
    )
    con.close()
    assert types == {
        "call_id": "VARCHAR",
        "mint": "VARCHAR",
        "caller_name": "VARCHAR",
        "chain": "VARCHAR",
        "alert_ts_ms": "BIGINT",
        "created_at": "VARCHAR",
    }
    rows = alerts(sample)
    per_day = (rows["alert_ts_ms"] - T0) // DAY
    assert per_day.value_counts().min() >= TINY["calls_per_day"]
    assert set(rows["chain"]) == {"solana"}
    assert rows["caller_name"].nunique() >= TINY["n_callers"]  # plus one blank on purpose
    assert rows["mint"].dropna().str.fullmatch(r"[1-9A-HJ-NP-Za-km-z]{32,44}").all()  # base58
    created = pd.to_datetime(rows["created_at"], utc=True, format="ISO8601")
    assert (created >= pd.to_datetime(rows["alert_ts_ms"], unit="ms", utc=True)).all()
    assert (rows.dropna().groupby("mint")["caller_name"].nunique() > 1).any()  # shared mints


def test_malformed_calls_reach_the_reject_path(sample: SampleData) -> None:
    out = load_calls(CallsSource("duckdb", sample.alerts_db), T0, T0 + 2 * DAY)
    assert len(out.calls) + len(out.rejects) == len(alerts(sample))
    assert sorted(out.rejects["reason"]) == [
        "conflicting_call_id",
        "conflicting_call_id",
        "duplicate_call_id",
        "duplicate_call_id",
        "missing_value",
        "missing_value",
    ]


def test_candles_layout_sorted_zstd_small_row_groups(sample: SampleData) -> None:
    files = sorted(sample.candles_dir.rglob("*.parquet"))
    assert [f.parent.name for f in files] == [
        "date=2023-12-31",
        "date=2024-01-01",
        "date=2024-01-02",
        "date=2024-01-03",
        "date=2024-01-04",
    ]
    for f in files:
        meta = pq.ParquetFile(f).metadata
        assert meta.row_group(0).column(0).compression == "ZSTD"
        assert all(meta.row_group(g).num_rows <= ROW_GROUP_ROWS for g in range(meta.num_row_groups))
        table = pq.read_table(f)
        assert table.schema.equals(CANDLE_SCHEMA)
        frame = table.to_pandas()
        day = f.parent.name.removeprefix("date=")
        assert (
            pd.to_datetime(frame["ts_ms"], unit="ms", utc=True).dt.strftime("%Y-%m-%d") == day
        ).all()
        order = frame.sort_values(["chain", "mint", "ts_ms"], kind="stable").index
        assert (order == frame.index).all()


def test_candles_cover_each_call_and_carry_a_few_bad_bars(sample: SampleData) -> None:
    bars = candles(sample)
    calls = alerts(sample).dropna()
    assert set(bars["interval"]) == {"1m"} and (bars["ts_ms"] % 60_000 == 0).all()
    # One series per mint: from 1 h before the first call to 48 h after the last.
    span = bars.groupby("mint")["ts_ms"].agg(["min", "max"])
    first_last = (
        calls.groupby("mint")["alert_ts_ms"].agg(["min", "max"]).join(span.add_suffix("_bar"))
    )
    covered = first_last.dropna()
    assert (covered["min_bar"] <= covered["min"] - 30 * 60_000).all()
    assert (covered["max_bar"] >= covered["max"] + 40 * 3_600_000).all()
    no_candles = first_last["min_bar"].isna().sum()
    assert 1 <= no_candles <= 0.1 * len(first_last)
    # Missing minutes: fewer bars than minutes spanned.
    assert len(bars) < ((span["max"] - span["min"]) // 60_000 + 1).sum()
    dup = bars.duplicated(["chain", "mint", "ts_ms"]).sum()
    assert 1 <= dup <= 10
    assert 1 <= bars["close"].isna().sum() <= 10
    assert 1 <= (bars["open"] == 0).sum() <= 10
    assert 1 <= (bars["high"] < bars["low"]).sum() <= 10
    # Memecoin moves: some calls double, some collapse.
    peak = bars.groupby("mint")["high"].max() / bars.groupby("mint")["open"].first()
    trough = bars.groupby("mint")["low"].min() / bars.groupby("mint")["open"].first()
    assert (peak >= 2).sum() >= 5 and (trough <= 0.1).sum() >= 5


def test_callers_differ_in_quality(tmp_path: Path) -> None:
    data = generate_sample_data(tmp_path, days=2, calls_per_day=100, n_callers=4)
    con = duckdb.connect()
    con.execute("ATTACH ? AS src (READ_ONLY)", [str(data.alerts_db)])
    hit = con.execute(
        """
        WITH w AS (
            SELECT a.caller_name, a.call_id, arg_min(b.open, b.ts_ms) AS p0, max(b.high) AS top
            FROM src.alerts a JOIN read_parquet(?) b ON b.mint = a.mint
             AND b.ts_ms >= a.alert_ts_ms AND b.ts_ms < a.alert_ts_ms + 48 * 3600000
            GROUP BY ALL)
        SELECT caller_name, avg(CAST(top >= 2 * p0 AS INT)) AS rate FROM w GROUP BY 1
        """,
        [str(data.candles_dir / "*" / "*.parquet")],
    ).df()
    con.close()
    assert len(hit) >= 4 and hit["rate"].max() - hit["rate"].min() >= 0.2


def test_same_seed_same_bytes_other_seed_other_data(sample: SampleData, tmp_path: Path) -> None:
    again = generate_sample_data(tmp_path / "again", **TINY)
    assert parquet_bytes(again) == parquet_bytes(sample)
    # DuckDB stamps each new file with random header bytes: compare the rows instead.
    pd.testing.assert_frame_equal(alerts(again), alerts(sample))
    other = generate_sample_data(tmp_path / "other", **{**TINY, "seed": 8})
    assert parquet_bytes(other) != parquet_bytes(sample)
    assert not alerts(other)["call_id"].isin(alerts(sample)["call_id"]).any()


def test_ensure_is_a_no_op_until_parameters_change(tmp_path: Path) -> None:
    small = {"days": 1, "calls_per_day": 20, "n_callers": 3}
    data = ensure_sample_data(tmp_path, **small)
    marker = json.loads((tmp_path / MARKER_FILE).read_text())
    assert marker["state"] == "complete" and marker["calls_per_day"] == 20
    stamp = data.alerts_db.stat().st_mtime_ns
    ensure_sample_data(tmp_path, **small)
    assert data.alerts_db.stat().st_mtime_ns == stamp
    ensure_sample_data(tmp_path, **{**small, "calls_per_day": 25})
    assert len(alerts(data)) == 25 + 3  # three malformed extra rows
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == [
        "alerts.duckdb",
        "candles",
    ]


def test_ensure_never_overwrites_data_it_did_not_write(tmp_path: Path) -> None:
    (tmp_path / "alerts.duckdb").write_bytes(b"someone's real calls")
    with pytest.raises(FileExistsError, match="not written by the sample generator"):
        ensure_sample_data(tmp_path, days=1, calls_per_day=5, n_callers=2)
    assert (tmp_path / "alerts.duckdb").read_bytes() == b"someone's real calls"


def test_bad_parameters_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n_callers"):
        generate_sample_data(tmp_path, days=1, calls_per_day=5, n_callers=1)
    assert not list(tmp_path.iterdir())
