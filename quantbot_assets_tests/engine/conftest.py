"""Small builders for engine tests: one-mint candle frames, alerts, and the two
implementations under test (the engine, and the slow reference of docs/semantics.md)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pytest

from quantbot_assets_tests.engine import reference

M = 60_000  # one minute in ms
# A UTC minute that is also a 5-minute boundary (28_333_335 minutes since epoch).
BASE = 1_700_000_100_000
MINT = "MINTaaaa"
CHAIN = "solana"

Bar = tuple[float, float, float, float, float]  # minute offset from BASE, open, high, low, close


def candles(
    bars: Sequence[Bar], *, mint: str = MINT, chain: str = CHAIN, interval: str = "1m"
) -> pd.DataFrame:
    """Candles of one mint; bar times are BASE + minute * M."""
    return pd.DataFrame(
        {
            "chain": chain,
            "mint": mint,
            "interval": interval,
            "ts_ms": pd.Series([BASE + int(b[0] * M) for b in bars], dtype="int64"),
            "open": pd.Series([b[1] for b in bars], dtype="float64"),
            "high": pd.Series([b[2] for b in bars], dtype="float64"),
            "low": pd.Series([b[3] for b in bars], dtype="float64"),
            "close": pd.Series([b[4] for b in bars], dtype="float64"),
            "volume": pd.Series([1.0] * len(bars), dtype="float64"),
        }
    )


def alerts(*calls: tuple[str, int], mint: str = MINT, caller: str = "alice") -> pd.DataFrame:
    """Alerts (call_id, alert_ts_ms) on one mint."""
    return pd.DataFrame(
        {
            "call_id": [c[0] for c in calls],
            "mint": mint,
            "caller_name": caller,
            "chain": CHAIN,
            "alert_ts_ms": pd.Series([c[1] for c in calls], dtype="int64"),
            "created_at": "2023-11-14T22:15:00Z",
        }
    )


@dataclass(frozen=True)
class Impl:
    """One implementation of compute_paths / simulate_policy with the engine's API."""

    name: str
    compute_paths: Callable[..., tuple[pd.DataFrame, pd.DataFrame]]
    simulate_policy: Callable[..., pd.DataFrame]

    def path(self, bars: Sequence[Bar], alert_at: int = BASE, **kw: Any) -> dict[str, Any]:
        """The single paths row of one call on `bars` (asserts it was not excluded)."""
        paths, excluded = self.compute_paths(alerts(("c1", alert_at)), candles(bars), **kw)
        assert len(excluded) == 0, excluded
        assert len(paths) == 1
        return {str(k): _plain(v) for k, v in paths.iloc[0].to_dict().items()}

    def trade(
        self, bars: Sequence[Bar], policy: dict, alert_at: int = BASE, **kw: Any
    ) -> dict[str, Any]:
        """The single trades row of one call on `bars` under `policy`."""
        trades = self.simulate_policy(
            alerts(("c1", alert_at)), candles(bars), policy, policy_id="p", **kw
        )
        assert len(trades) == 1, trades
        return {str(k): _plain(v) for k, v in trades.iloc[0].to_dict().items()}


def _plain(v: Any) -> Any:
    """pd.NA / NaN -> None, numpy scalars -> Python scalars."""
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return None
    return v.item() if hasattr(v, "item") else v


def engine_impl() -> Impl:
    from quantbot_assets.engine import compute_paths, parse_policy, simulate_policy

    def simulate(alerts_: pd.DataFrame, candles_: pd.DataFrame, policy: dict, **kw: Any):
        return simulate_policy(alerts_, candles_, parse_policy(policy), **kw)

    # `fine` (1m candles for the drill-down) is passed as a DataFrame to both implementations

    return Impl("engine", compute_paths, simulate)


REFERENCE = Impl("reference", reference.reference_paths, reference.reference_trades)


@pytest.fixture(params=["reference", "engine"])
def impl(request: pytest.FixtureRequest) -> Impl:
    """Hand-computed cases run on both: they check the reference as much as the engine."""
    return REFERENCE if request.param == "reference" else engine_impl()
