"""Prepared candles saved as Arrow IPC ("features") and loaded back: bit for bit, same kernel
results; loading a subset of series; merging days for a month."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantbot_assets.engine import compute_paths, prepare_candles, search_frontier, simulate_policy
from quantbot_assets.engine.candles import PreparedCandles, interval_ms
from quantbot_assets.engine.features import load_prepared, merge_prepared, save_prepared
from quantbot_assets.engine.windows import candle_load_range

M = 60_000
H = 3_600_000
T0 = 1_700_000_000_000 - 1_700_000_000_000 % H
FIELDS = ("ts", "open", "high", "low", "close", "volume", "offsets", "chain", "mint")


def store(n_mints: int = 6, minutes: int = 3000, seed: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(n_mints):
        close = np.exp(np.cumsum(rng.normal(0, 0.04, minutes)))
        keep = rng.random(minutes) > 0.05  # gaps
        t = T0 + np.flatnonzero(keep) * M
        c = close[keep]
        o = c * np.exp(rng.normal(0, 0.01, len(c)))
        frames.append(
            pd.DataFrame(
                {
                    "chain": "sol",
                    "mint": f"mint{k}",
                    "interval": "1m",
                    "ts_ms": t,
                    "open": o,
                    "high": np.maximum(o, c) * 1.03,
                    "low": np.minimum(o, c) * 0.97,
                    "close": c,
                    "volume": rng.uniform(0, 9, len(c)),
                }
            )
        )
    df = pd.concat(frames, ignore_index=True)
    df.loc[[5, 70], "open"] = [np.nan, -1.0]  # malformed fields become NaN
    df.loc[90, ["high", "low"]] = [1.0, 2.0]
    return df


def calls(n: int = 40, seed: int = 4, n_mints: int = 6) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "call_id": [f"c{i}" for i in range(n)],
            "mint": [f"mint{k}" for k in rng.integers(0, n_mints, n)],
            "caller_name": [f"caller{k}" for k in rng.integers(0, 3, n)],
            "chain": "sol",
            "alert_ts_ms": T0 + rng.integers(0, 1500, n) * M + rng.integers(0, M, n),
        }
    )


def assert_same(a: PreparedCandles, b: PreparedCandles) -> None:
    assert a.interval == b.interval
    for f in FIELDS:
        x, y = getattr(a, f), getattr(b, f)
        assert x.dtype == y.dtype and x.shape == y.shape, f
        if x.dtype.kind == "f":
            assert np.array_equal(x.view(np.int64), y.view(np.int64)), f  # NaN bits too
        else:
            assert np.array_equal(x, y), f


@pytest.mark.parametrize("interval", ["1m", "5m"])
@pytest.mark.parametrize("compression", [None, "lz4"])
def test_round_trip_is_exact_and_kernels_agree(
    tmp_path: Path, interval: str, compression: str | None
) -> None:
    fresh, issues = prepare_candles(store(), interval)
    assert len(issues) == 3
    path = tmp_path / f"day-{interval}.arrow"
    save_prepared(fresh, path, compression=compression)
    loaded = load_prepared(path)
    assert_same(fresh, loaded)
    a = calls()
    kw = {"interval": interval, "horizon_ms": 6 * H}
    pd.testing.assert_frame_equal(
        compute_paths(a, fresh, **kw)[0], compute_paths(a, loaded, **kw)[0]
    )
    pol = {"kind": "trailing_stop", "activation_bps": 500, "trail_bps": 300, "hard_stop_bps": 2000}
    pd.testing.assert_frame_equal(
        simulate_policy(a, fresh, pol, policy_id="t", **kw),
        simulate_policy(a, loaded, pol, policy_id="t", **kw),
    )
    pd.testing.assert_frame_equal(
        search_frontier(a, fresh, min_trades=1, **kw),
        search_frontier(a, loaded, min_trades=1, **kw),
    )


def test_empty_round_trip(tmp_path: Path) -> None:
    fresh, _ = prepare_candles(store().iloc[:0])
    save_prepared(fresh, tmp_path / "empty.arrow")
    assert_same(fresh, load_prepared(tmp_path / "empty.arrow"))


def test_load_a_subset_of_series(tmp_path: Path) -> None:
    fresh, _ = prepare_candles(store())
    save_prepared(fresh, tmp_path / "f.arrow")
    keys = pd.DataFrame({"chain": ["sol", "sol", "eth"], "mint": ["mint4", "mint1", "mint1"]})
    part = load_prepared(tmp_path / "f.arrow", keys=keys)
    assert part.mint.tolist() == ["mint1", "mint4"] and part.chain.tolist() == ["sol", "sol"]
    a = calls()
    a = a[a["mint"].isin(["mint1", "mint4"])]
    pd.testing.assert_frame_equal(
        compute_paths(a, fresh, horizon_ms=6 * H)[0], compute_paths(a, part, horizon_ms=6 * H)[0]
    )


def test_not_a_features_file(tmp_path: Path) -> None:
    import pyarrow as pa

    with pa.ipc.new_file(str(tmp_path / "x.arrow"), pa.schema([("a", pa.int64())])) as w:
        w.write_table(pa.table({"a": [1]}))
    with pytest.raises(ValueError, match="prepared-candles"):
        load_prepared(tmp_path / "x.arrow")


@pytest.mark.parametrize("interval", ["1m", "5m", "1h"])
def test_days_merged_give_the_month(interval: str) -> None:
    """One features file per day (each loaded over candle_load_range for that day's calls),
    merged, gives every call the same results as one month-wide preparation."""
    full = store()
    a = calls(60)
    horizon = 5 * H + 7 * M
    day = (a["alert_ts_ms"] - T0) // (8 * H)  # "days" of 8 hours, to have several
    parts = []
    for _, cd in a.groupby(day):
        start, end = candle_load_range(
            cd["alert_ts_ms"].to_numpy(), interval_ms=interval_ms(interval), horizon_ms=horizon
        )
        keys = set(cd["mint"])
        rows = full[full["mint"].isin(keys) & (full["ts_ms"] >= start) & (full["ts_ms"] < end)]
        parts.append(prepare_candles(rows, interval)[0])
    merged = merge_prepared(parts)
    month, _ = prepare_candles(full, interval)
    kw = {"interval": interval, "horizon_ms": horizon}
    pd.testing.assert_frame_equal(
        compute_paths(a, month, **kw)[0], compute_paths(a, merged, **kw)[0]
    )
    pol = {"kind": "fixed_stop", "stop_loss_bps": 1500, "take_profit_bps": 3000}
    pd.testing.assert_frame_equal(
        simulate_policy(a, month, pol, policy_id="f", **kw),
        simulate_policy(a, merged, pol, policy_id="f", **kw),
    )


def test_merge_refuses_parts_that_disagree() -> None:
    p, _ = prepare_candles(store())
    q = PreparedCandles(
        p.interval, p.ts, p.open * 2, p.high, p.low, p.close, p.volume, p.offsets, p.chain, p.mint
    )
    with pytest.raises(ValueError, match="disagree"):
        merge_prepared([p, q])
    with pytest.raises(ValueError, match="nothing"):
        merge_prepared([])


def test_windows_digest_hashes_the_bars_the_windows_read_and_nothing_else() -> None:
    # A run's data fingerprint (run.json) hashes these bars: the same calls and bars give the
    # same digest however the calls are split over prepared files; a bar inside a window
    # changes it, a bar no window reads (or a volume, never read) does not.
    from quantbot_assets.engine.features import windows_digest

    raw, alerts = store(), calls()
    prepared, _ = prepare_candles(raw, interval="1m")
    window = {"entry_delay_ms": 0, "horizon_ms": 2 * H}
    whole = windows_digest([(prepared, alerts)], **window)
    half = len(alerts) // 2
    parts = []
    for part in (alerts.iloc[:half], alerts.iloc[half:]):
        span = candle_load_range(
            part["alert_ts_ms"].to_numpy(), interval_ms=M, horizon_ms=2 * H, entry_delay_ms=0
        )
        assert span is not None
        sub = raw[(raw["ts_ms"] >= span[0]) & (raw["ts_ms"] < span[1])]
        parts.append((prepare_candles(sub, interval="1m")[0], part))
    assert windows_digest(parts[::-1], **window) == whole
    assert windows_digest([(prepared, alerts.iloc[::-1])], **window) == whole

    def changed(mask: pd.Series, column: str) -> str:
        edited = raw.copy()
        edited.loc[mask[mask].index[:1], column] *= 1.1
        return windows_digest([(prepare_candles(edited, interval="1m")[0], alerts)], **window)

    first = alerts.iloc[0]
    in_window = (raw["mint"] == first["mint"]) & (raw["ts_ms"] >= first["alert_ts_ms"] + 10 * M)
    assert changed(in_window, "high") != whole
    assert changed(in_window, "volume") == whole
    last_alert = alerts.groupby("mint")["alert_ts_ms"].max()
    beyond = raw["ts_ms"] > raw["mint"].map(last_alert) + 3 * H  # past every window and probe
    assert beyond.any()
    assert changed(beyond, "close") == whole
    assert windows_digest([(prepared, alerts)], entry_delay_ms=0, horizon_ms=H) != whole
