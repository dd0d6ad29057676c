"""A tiny, hand-shaped data set for Dagster-layer tests: 2 days, 2 callers, 3 h windows."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

DAY1_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
MIN = 60_000
HORIZON_MS = 3 * 3_600_000


@dataclass(frozen=True)
class TinyData:
    calls: Path
    candles: Path
    n_calls_day1: int  # rows in the calls file on 2024-01-01 (one is a duplicate)


def _bars(
    mint: str, start_ms: int, n: int, p0: float, drift: float, rng: np.random.Generator
) -> pd.DataFrame:
    steps = rng.normal(drift, 0.02, n)
    close = p0 * np.exp(np.cumsum(steps))
    open_ = np.concatenate([[p0], close[:-1]])
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, n))
    return pd.DataFrame(
        {
            "chain": "solana",
            "mint": mint,
            "interval": "1m",
            "ts_ms": start_ms + MIN * np.arange(n, dtype=np.int64),
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": rng.uniform(10, 100, n),
        }
    )


def write_tiny_data(root: Path) -> TinyData:
    rng = np.random.default_rng(3)
    calls, bars = [], []
    for day in range(2):
        for i in range(6):
            mint = f"Mint{day}{i}So1111111111111111111111111111"
            alert = DAY1_MS + day * 86_400_000 + (i + 1) * 3_600_000 + 17_000
            calls.append(
                {
                    "call_id": f"c{day}{i}",
                    "mint": mint,
                    "caller_name": "alice" if i % 2 else "bob",
                    "chain": "solana",
                    "alert_ts_ms": alert,
                    "created_at": pd.Timestamp(alert, unit="ms").isoformat(),
                }
            )
            if i == 5:
                continue  # a token with no candles: excluded as no_candles
            drift = 0.01 if i % 2 else -0.004  # alice's calls pump, bob's bleed
            bars.append(_bars(mint, alert - alert % MIN - 10 * MIN, 200, 1.0 + i, drift, rng))
    # A duplicated call id with identical content on day 1 (rejected, not lost).
    calls.append(dict(calls[0]))
    candles = pd.concat(bars, ignore_index=True)
    candles.loc[50, ["high", "low"]] = np.nan  # one malformed bar
    root.mkdir(parents=True, exist_ok=True)
    calls_path, candles_path = root / "calls.parquet", root / "candles.parquet"
    pd.DataFrame(calls).to_parquet(calls_path, index=False)
    candles.to_parquet(candles_path, index=False)
    return TinyData(calls_path, candles_path, n_calls_day1=7)
