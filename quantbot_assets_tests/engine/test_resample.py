"""Resampling 1m bars into 5m/15m/1h bars, and `--interval 5m` on a 1m store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantbot_assets.engine import compute_paths, prepare_candles, resample_candles, simulate_policy
from quantbot_assets.engine.candles import interval_ms
from quantbot_assets.engine.windows import candle_load_range

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


def _cut(store: pd.DataFrame, start: int, end: int) -> pd.DataFrame:
    return store[(store["ts_ms"] >= start) & (store["ts_ms"] < end)].reset_index(drop=True)


def test_window_ending_mid_bucket_resamples_like_a_native_store() -> None:
    # Hand-made: 1m bars at minutes 0..19; alert at minute 2, horizon 8 minutes, so the window
    # ends at minute 10 exactly... and a second call whose window ends at minute 13 (mid-bucket).
    rows = [(i, 10 + i, 11 + i, 9 + i, 10.5 + i, 1) for i in range(20)]
    rows[12] = (12, 22, 40, 21, 22.5, 1)  # a spike in minute 12, inside bucket 10..14
    store = one_minute(rows)
    native = resample_candles(store, "5m")  # what a native 5m store holds
    alerts = pd.DataFrame(
        {
            "call_id": ["c"],
            "mint": ["a"],
            "caller_name": "x",
            "chain": "sol",
            "alert_ts_ms": [T0 + 2 * M],
        }
    )
    horizon = 9 * M  # window end at minute 11: the bucket 10..14 opens before it
    start, end = candle_load_range(
        [T0 + 2 * M, T0 + 2 * M],
        interval_ms=interval_ms("5m"),
        horizon_ms=horizon,
        entry_delay_ms=0,
    )
    loaded = _cut(store, start, end)
    assert loaded["ts_ms"].max() == T0 + 19 * M  # every minute of bucket 10..14 (and the probe)
    p_native, _ = compute_paths(alerts, native, interval="5m", horizon_ms=horizon)
    p_loaded, _ = compute_paths(alerts, loaded, interval="5m", horizon_ms=horizon)
    pd.testing.assert_frame_equal(p_native, p_loaded)
    # W = buckets 5 and 10 (bucket 0 opens before the alert, bucket 15 at/after the end)
    assert p_loaded["bars"].tolist() == [2]
    assert p_loaded["peak_multiple"].tolist() == [40 / 15]  # minute 12's high, in bucket 10
    # the old cut at alert + horizon lost minutes 11..14 of the last bucket
    old = _cut(store, T0 + 2 * M, T0 + 2 * M + horizon)
    p_old, _ = compute_paths(alerts, old, interval="5m", horizon_ms=horizon)
    assert p_old["peak_multiple"].tolist() != p_loaded["peak_multiple"].tolist()
    pol = {"kind": "fixed_stop", "stop_loss_bps": 9000, "take_profit_bps": 15000}
    pd.testing.assert_frame_equal(
        simulate_policy(alerts, native, pol, policy_id="p", interval="5m", horizon_ms=horizon),
        simulate_policy(alerts, loaded, pol, policy_id="p", interval="5m", horizon_ms=horizon),
    )


@pytest.mark.parametrize("interval", ["1m", "5m", "15m", "1h"])
def test_bars_at_or_after_the_window_end_change_nothing(interval: str) -> None:
    rng = np.random.default_rng(3)
    close = np.exp(np.cumsum(rng.normal(0, 0.05, 400)))
    store = one_minute([(i, c * 0.99, c * 1.08, c * 0.93, c, 1) for i, c in enumerate(close)])
    alerts = pd.DataFrame(
        {
            "call_id": ["c1", "c2"],
            "mint": ["a", "a"],
            "caller_name": "x",
            "chain": "sol",
            "alert_ts_ms": [T0 + 7 * M + 5, T0 + 61 * M],
        }
    )
    horizon = 97 * M + 1  # ends mid-bucket for every interval
    start, end = candle_load_range(
        [T0 + 7 * M + 5, T0 + 61 * M],
        interval_ms=interval_ms(interval),
        horizon_ms=horizon,
        entry_delay_ms=0,
    )
    base = _cut(store, start, end)
    # wild bars from the window end on: huge highs, tiny lows, a NaN close
    tail = one_minute([(i, 1e9, 1e12, 1e-12, np.nan, 1) for i in range(400, 460)])
    wild = pd.concat([base, tail], ignore_index=True)
    # also replace every bar from the last window end on by wild prices (native store only)
    last_end = T0 + 61 * M + horizon
    step = {"1m": M, "5m": 5 * M, "15m": 15 * M, "1h": H}[interval]
    native = resample_candles(wild, interval) if interval != "1m" else wild
    native_wild = native.copy()
    past = native_wild["ts_ms"] >= last_end - last_end % step + (step if last_end % step else 0)
    native_wild.loc[past, ["high", "low"]] = [1e12, 1e-12]
    for a, b in ((base, wild), (native, native_wild)):
        pa_, _ = compute_paths(alerts, a, interval=interval, horizon_ms=horizon)
        pb_, _ = compute_paths(alerts, b, interval=interval, horizon_ms=horizon)
        pd.testing.assert_frame_equal(pa_, pb_)
        for pol in (
            {"kind": "fixed_stop", "stop_loss_bps": 3000},
            {"kind": "time_stop", "max_hold_ms": 10 * H},
            {"kind": "trailing_stop", "activation_bps": 500, "trail_bps": 300},
        ):
            pd.testing.assert_frame_equal(
                simulate_policy(
                    alerts, a, pol, policy_id="p", interval=interval, horizon_ms=horizon
                ),
                simulate_policy(
                    alerts, b, pol, policy_id="p", interval=interval, horizon_ms=horizon
                ),
            )
