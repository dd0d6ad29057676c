"""Resampling 1m bars into 5m/15m/1h bars, and `--interval 5m` on a 1m store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantbot_assets.engine import compute_paths, prepare_candles, resample_candles, simulate_policy

M = 60_000
H = 3_600_000
T0 = 1_700_000_000_000 - 1_700_000_000_000 % H  # an hour boundary


def one_minute(rows: list[tuple], mint: str = "a") -> pd.DataFrame:
    """rows: (minute, open, high, low, close, volume)."""
    return pd.DataFrame(
        {
            "chain": "sol",
            "mint": mint,
            "interval": "1m",
            "ts_ms": np.array([T0 + r[0] * M for r in rows], dtype=np.int64),
            "open": [float(r[1]) for r in rows],
            "high": [float(r[2]) for r in rows],
            "low": [float(r[3]) for r in rows],
            "close": [float(r[4]) for r in rows],
            "volume": [float(r[5]) for r in rows],
        }
    )


def test_hand_computed_5m_bars() -> None:
    rows = [
        (0, 10, 12, 9, 11, 1),
        (1, 11, 15, 10, 14, 2),
        (4, 14, 14, 8, 9, 3),
        # minutes 5..6 missing: a gap; the next bucket starts at minute 7
        (7, 9, 10, 7, 10, 4),
        (9, 10, 20, 10, 19, 5),
        (10, 19, 19, 18, 18, 6),
    ]
    out = resample_candles(one_minute(rows), "5m")
    assert out["interval"].unique().tolist() == ["5m"]
    assert ((out["ts_ms"] - T0) // M).tolist() == [0, 5, 10]
    assert out["open"].tolist() == [10, 9, 19]
    assert out["high"].tolist() == [15, 20, 19]
    assert out["low"].tolist() == [8, 7, 18]
    assert out["close"].tolist() == [9, 19, 18]
    assert out["volume"].tolist() == [6, 9, 6]


def test_bars_align_to_the_interval_not_to_the_first_bar() -> None:
    out = resample_candles(
        one_minute(
            [(3, 1, 1, 1, 1, 1), (17, 2, 2, 2, 2, 1), (44, 3, 3, 3, 3, 1), (61, 4, 4, 4, 4, 1)]
        ),
        "15m",
    )
    assert ((out["ts_ms"] - T0) // M).tolist() == [0, 15, 30, 60]
    hourly = resample_candles(one_minute([(3, 1, 1, 1, 1, 1), (61, 4, 4, 4, 4, 1)]), "1h")
    assert (hourly["ts_ms"] - T0).tolist() == [0, H]


def test_nan_fields_are_skipped_by_max_and_min_only() -> None:
    rows = [(0, 10, 12, 9, 11, 1), (1, 11, -1, 5, 14, 2), (2, 14, 13, 9, np.nan, 3)]
    out = resample_candles(one_minute(rows), "5m")
    assert out["high"].tolist() == [13]  # the invalid high proves nothing
    assert out["low"].tolist() == [5]
    assert out["open"].tolist() == [10]
    assert np.isnan(out["close"].iloc[0])  # the close of the last bar is unknown


def test_matches_a_pandas_groupby_on_random_minutes() -> None:
    rng = np.random.default_rng(11)
    minutes = np.sort(rng.choice(600, size=400, replace=False))
    px = rng.uniform(1, 2, size=(400, 4))
    rows = [
        (int(m), p[0], p.max() + 0.1, p.min() - 0.1, p[3], rng.uniform(1, 5))
        for m, p in zip(minutes, px, strict=True)
    ]
    df = one_minute(rows)
    for interval, step in (("5m", 5 * M), ("15m", 15 * M), ("1h", H)):
        got = resample_candles(df, interval)
        g = df.assign(b=df["ts_ms"] // step * step).groupby("b")
        want = pd.DataFrame(
            {
                "open": g["open"].first(),
                "high": g["high"].max(),
                "low": g["low"].min(),
                "close": g["close"].last(),
                "volume": g["volume"].sum(),
            }
        )
        assert got["ts_ms"].tolist() == want.index.tolist()
        for col in want.columns:
            np.testing.assert_allclose(got[col].to_numpy(), want[col].to_numpy(), rtol=1e-12)


def test_interval_5m_on_a_1m_store_uses_resampled_bars() -> None:
    rng = np.random.default_rng(5)
    frames = []
    for mint in ("a", "b"):
        close = np.exp(np.cumsum(rng.normal(0, 0.05, 300)))
        frames.append(
            one_minute([(i, c * 0.99, c * 1.08, c * 0.93, c, 1) for i, c in enumerate(close)], mint)
        )
    store = pd.concat(frames, ignore_index=True)
    alerts = pd.DataFrame(
        {
            "call_id": ["c1", "c2"],
            "mint": ["a", "b"],
            "caller_name": "x",
            "chain": "sol",
            "alert_ts_ms": [T0 + 7 * M + 5, T0 + 31 * M],
        }
    )
    resampled = resample_candles(store, "5m")
    p_store, _ = compute_paths(alerts, store, interval="5m", horizon_ms=3 * H)
    p_res, _ = compute_paths(alerts, resampled, interval="5m", horizon_ms=3 * H)
    pd.testing.assert_frame_equal(p_store, p_res)
    assert (p_store["interval"] == "5m").all()
    assert ((p_store["t0_ms"] - T0) % (5 * M) == 0).all() and p_store["t0_ms"].tolist() == [
        T0 + 10 * M,
        T0 + 35 * M,
    ]
    pol = {"kind": "trailing_stop", "activation_bps": 500, "trail_bps": 300}
    pd.testing.assert_frame_equal(
        simulate_policy(alerts, store, pol, policy_id="t", interval="5m"),
        simulate_policy(alerts, resampled, pol, policy_id="t", interval="5m"),
    )
    # mixed store: a mint with its own 5m bars keeps them; the other is resampled
    own_5m = resampled[resampled["mint"] == "a"].assign(open=lambda d: d["open"] * 1.0)
    mixed = pd.concat([store[store["mint"] == "b"], own_5m], ignore_index=True)
    prepared, _ = prepare_candles(mixed, "5m")
    assert prepared.n_series == 2 and prepared.n_bars == len(resampled)


def test_resampling_needs_a_known_interval() -> None:
    with pytest.raises(ValueError, match="interval"):
        resample_candles(one_minute([(0, 1, 1, 1, 1, 1)]), "7m")
