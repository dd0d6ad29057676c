"""prepare_candles: flat sorted arrays, offsets, zero-copy fast path, and data issues reported
(never guessed): duplicates, conflicting duplicates, invalid prices, high < low."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from quantbot_assets.engine import PreparedCandles, compute_paths, prepare_candles

M = 60_000
T0 = 1_700_000_040_000  # a minute boundary


def frame(rows: list[tuple], interval: str = "1m") -> pd.DataFrame:
    """rows: (chain, mint, minute, open, high, low, close)."""
    return pd.DataFrame(
        {
            "chain": [r[0] for r in rows],
            "mint": [r[1] for r in rows],
            "interval": interval,
            "ts_ms": np.array([T0 + r[2] * M for r in rows], dtype=np.int64),
            "open": np.array([r[3] for r in rows], dtype=np.float64),
            "high": np.array([r[4] for r in rows], dtype=np.float64),
            "low": np.array([r[5] for r in rows], dtype=np.float64),
            "close": np.array([r[6] for r in rows], dtype=np.float64),
            "volume": 1.0,
        }
    )


def series(p: PreparedCandles, chain: str, mint: str) -> slice:
    k = int(p.series_of(np.array([chain], dtype=object), np.array([mint], dtype=object))[0])
    assert k >= 0
    return slice(int(p.offsets[k]), int(p.offsets[k + 1]))


def test_sorted_categorical_input_is_used_without_copies() -> None:
    df = frame(
        [("sol", "a", i, 1.0 + i, 2.0 + i, 0.5 + i, 1.5 + i) for i in range(5)]
        + [("sol", "b", i, 1.0, 1.0, 1.0, 1.0) for i in range(3)]
    )
    for col in ("chain", "mint", "interval"):
        df[col] = df[col].astype("category")
    p, issues = prepare_candles(df)
    assert issues.empty and list(issues.columns) == ["reason", "chain", "mint", "ts_ms", "detail"]
    assert np.shares_memory(p.open, df["open"].to_numpy()) and np.shares_memory(
        p.ts, df["ts_ms"].to_numpy()
    )
    assert p.offsets.tolist() == [0, 5, 8]
    assert p.chain.tolist() == ["sol", "sol"] and p.mint.tolist() == ["a", "b"]


def test_unsorted_and_interleaved_input_is_sorted_per_series() -> None:
    rows = [
        ("sol", "a", 2, 3, 3, 3, 3),
        ("eth", "b", 0, 7, 7, 7, 7),
        ("sol", "a", 0, 1, 1, 1, 1),
        ("eth", "b", 1, 8, 8, 8, 8),
        ("sol", "a", 1, 2, 2, 2, 2),
    ]
    p, issues = prepare_candles(frame(rows))
    assert issues.empty
    a = series(p, "sol", "a")
    assert p.open[a].tolist() == [1, 2, 3] and np.all(np.diff(p.ts[a]) > 0)
    b = series(p, "eth", "b")
    assert p.open[b].tolist() == [7, 8]
    # one series split into two runs (a, b, a) is regrouped, not treated as two series
    p2, _ = prepare_candles(frame([rows[2], rows[4], rows[1], rows[0]]))
    assert p2.n_series == 2 and p2.open[series(p2, "sol", "a")].tolist() == [1, 2, 3]


def test_same_mint_on_two_chains_are_two_series() -> None:
    p, _ = prepare_candles(frame([("sol", "x", 0, 1, 1, 1, 1), ("eth", "x", 0, 2, 2, 2, 2)]))
    assert p.open[series(p, "sol", "x")].tolist() == [1] and p.open[
        series(p, "eth", "x")
    ].tolist() == [2]


def test_duplicates_are_reported_and_conflicting_ones_prove_nothing() -> None:
    rows = [
        ("sol", "a", 0, 1, 2, 0.5, 1.5),
        ("sol", "a", 1, 2, 3, 1.5, 2.5),
        ("sol", "a", 1, 2, 3, 1.5, 2.5),  # identical duplicate
        ("sol", "a", 2, 3, 4, 2.5, 3.5),
        ("sol", "a", 2, 3, 9, 2.5, 3.5),  # same bar, different high
    ]
    p, issues = prepare_candles(frame(rows))
    a = series(p, "sol", "a")
    assert (p.ts[a] - T0).tolist() == [0, M, 2 * M]  # every timestamp kept once
    assert p.high[a][1] == 3
    assert np.isnan([p.open[a][2], p.high[a][2], p.low[a][2], p.close[a][2]]).all()
    got = sorted(zip(issues["reason"], issues["ts_ms"] - T0, strict=True))
    assert got == [("conflicting_duplicate_bar", 2 * M), ("duplicate_bar", M)]


@pytest.mark.parametrize(
    ("bar", "nan_fields", "reason"),
    [
        ((np.nan, 2, 0.5, 1), ["open"], "invalid_price"),
        ((1, 0.0, 0.5, 1), ["high"], "invalid_price"),
        ((1, 2, -0.5, 1), ["low"], "invalid_price"),
        ((1, 2, 0.5, np.inf), ["close"], "invalid_price"),
        ((1, 0.5, 2, 1), ["high", "low"], "high_below_low"),
    ],
)
def test_malformed_bars_keep_their_time_with_nan_fields(
    bar: tuple, nan_fields: list[str], reason: str
) -> None:
    df = frame([("sol", "a", 0, 1, 2, 0.5, 1), ("sol", "a", 1, *bar)])
    p, issues = prepare_candles(df)
    assert p.n_bars == 2
    fields = {"open": p.open, "high": p.high, "low": p.low, "close": p.close}
    assert sorted(k for k, v in fields.items() if np.isnan(v[1])) == sorted(nan_fields)
    assert issues["reason"].tolist() == [reason] and issues["ts_ms"].tolist() == [T0 + M]
    assert issues["mint"].tolist() == ["a"] and issues["chain"].tolist() == ["sol"]
    for f in nan_fields:
        assert f in issues["detail"].iloc[0]
    # the input frame itself is not modified
    assert not df[["open", "high", "low", "close"]].iloc[0].isna().any()
    assert df.loc[1, ["open", "high", "low", "close"]].tolist() == pytest.approx(
        list(bar), nan_ok=True
    )


def test_an_entry_bar_with_a_bad_open_excludes_the_call() -> None:
    df = frame([("sol", "a", 0, -1, 2, 0.5, 1), ("sol", "a", 1, 1, 2, 0.5, 1)])
    alerts = pd.DataFrame(
        {
            "call_id": ["c1"],
            "mint": ["a"],
            "caller_name": ["x"],
            "chain": ["sol"],
            "alert_ts_ms": [T0 - 1000],
        }
    )
    paths, excluded = compute_paths(alerts, df)
    assert paths.empty and excluded.to_dict("records") == [
        {"call_id": "c1", "reason": "invalid_entry_price"}
    ]


def test_object_and_categorical_columns_give_the_same_result() -> None:
    rng = np.random.default_rng(3)
    rows = [
        ("sol", f"m{k}", i, *(float(x) for x in rng.uniform(1, 2, 4)))
        for k in range(4)
        for i in rng.permutation(6)
    ]
    plain = frame(rows)
    cat = plain.copy()
    for col in ("chain", "mint", "interval"):
        cat[col] = cat[col].astype("category")
    p1, i1 = prepare_candles(plain)
    p2, i2 = prepare_candles(cat)
    for k in range(4):
        s1, s2 = series(p1, "sol", f"m{k}"), series(p2, "sol", f"m{k}")
        for f in ("ts", "open", "high", "low", "close"):
            np.testing.assert_array_equal(getattr(p1, f)[s1], getattr(p2, f)[s2])
    assert i1.equals(i2)


@pytest.mark.parametrize("storage", ["string[pyarrow]", "large_string[pyarrow]"])
def test_arrow_string_columns_give_the_categorical_result(storage: str) -> None:
    """Arrow string columns (what `load_candles` returns) are coded by comparing each row's
    bytes with the previous row's, 8 at a time: mints that differ only in their last byte,
    or only in length, past 8 bytes or within them, stay distinct series."""
    rng = np.random.default_rng(5)
    mints = ["x" * 40 + "a", "x" * 40 + "b", "x" * 41, "y" * 16, "y" * 16 + "z", "m", "", "é" * 9]
    rows = [
        ("solana", mint, i, *(float(x) for x in rng.uniform(1, 2, 4)))
        for mint in mints
        for i in range(5)
        for _ in range(1 + i % 2)  # some bars twice (duplicates)
    ]
    plain = frame(rows)
    dtype = (
        pd.ArrowDtype(pa.large_string())
        if storage.startswith("large")
        else pd.StringDtype("pyarrow")
    )
    arrow = plain.copy()
    cat = plain.copy()
    for col in ("chain", "mint", "interval"):
        arrow[col] = arrow[col].astype(dtype)
        cat[col] = cat[col].astype("category")
    p1, i1 = prepare_candles(arrow)
    p2, i2 = prepare_candles(cat)
    assert p1.n_series == p2.n_series == len(mints)
    for mint in mints:
        s1, s2 = series(p1, "solana", mint), series(p2, "solana", mint)
        for f in ("ts", "open", "high", "low", "close"):
            np.testing.assert_array_equal(getattr(p1, f)[s1], getattr(p2, f)[s2])

    def rows_of(issues: pd.DataFrame) -> list[tuple]:
        return sorted(map(tuple, issues.astype(str).to_numpy().tolist()))

    assert len(i1) and rows_of(i1) == rows_of(i2)


def test_rows_of_other_intervals_are_ignored() -> None:
    one = frame([("sol", "a", i, 1, 2, 0.5, 1) for i in range(10)])
    five = frame([("sol", "a", 0, 9, 9, 9, 9), ("sol", "a", 5, 8, 8, 8, 8)], interval="5m")
    p, _ = prepare_candles(pd.concat([one, five], ignore_index=True), "5m")
    assert p.open.tolist() == [9, 8]  # the store's own 5m bars, not a resample
    p1, _ = prepare_candles(pd.concat([five, one], ignore_index=True), "1m")
    assert p1.n_bars == 10


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda df: df.drop(columns=["low"]), "low"),
        (lambda df: df.assign(ts_ms=df["ts_ms"].astype("float64")), "ts_ms"),
        (lambda df: df.assign(ts_ms=pd.array([None, 1], dtype="Int64")), "ts_ms"),
        (lambda df: df.assign(interval="2m"), "interval"),
        (lambda df: df.assign(mint=[None, "a"]), "mint"),
        (lambda df: df.assign(open=["x", "y"]), "open"),
    ],
)
def test_unreadable_candles_raise_naming_the_column(mutate, match: str) -> None:  # type: ignore[no-untyped-def]
    df = frame([("sol", "a", 0, 1, 2, 0.5, 1), ("sol", "a", 1, 1, 2, 0.5, 1)])
    with pytest.raises(ValueError, match=match):
        prepare_candles(mutate(df))


def test_unknown_requested_interval_raises() -> None:
    with pytest.raises(ValueError, match="interval"):
        prepare_candles(frame([("sol", "a", 0, 1, 2, 0.5, 1)]), "3m")


def test_empty_candles() -> None:
    p, issues = prepare_candles(frame([]))
    assert p.n_series == 0 and p.n_bars == 0 and issues.empty


def test_rows_alternating_between_series_more_often_than_there_are_series() -> None:
    rows = [("sol", "ab"[i % 2], i // 2, 1.0 + i, 2.0 + i, 0.5 + i, 1.0 + i) for i in range(8)]
    p, issues = prepare_candles(frame(rows))
    assert issues.empty and p.n_series == 2
    assert p.open[series(p, "sol", "a")].tolist() == [1, 3, 5, 7]
    assert p.open[series(p, "sol", "b")].tolist() == [2, 4, 6, 8]
