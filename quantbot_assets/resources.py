"""Dagster resources: where calls and candles come from, and the run's parameters.

Asset code is the same on a laptop and in production; only these paths move
(environment variables, see README "Configuration").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field

from quantbot_assets.params import DEFAULT_HORIZON_MS
from quantbot_assets.sample_data import ensure_sample_data
from quantbot_assets.sources.access import calls_source_from_path, candle_source_from_path
from quantbot_assets.sources.calls import CallsLoad, load_calls
from quantbot_assets.sources.candles import load_candles
from quantbot_assets.storage import sync_mirror


class BacktestParams(dg.ConfigurableResource):
    """Run parameters shared by every asset of a run (recorded in run.json)."""

    interval: str = Field(default="1m", description="Bar interval: 1m, 5m, 15m or 1h")
    horizon_ms: int = Field(default=DEFAULT_HORIZON_MS, description="Window after the alert, ms")
    entry_delay_ms: int = Field(default=0, description="Delay between alert and entry, ms")
    activity_move_bps: float = Field(default=1000, description="Move that counts as activity, bps")
    fee_bps: float = Field(default=0.0, description="Fee per side, bps")
    slippage_bps: float = Field(default=0.0, description="Slippage per side, bps")

    def truth_params(self) -> dict[str, Any]:
        return {
            "interval": self.interval,
            "horizon_ms": self.horizon_ms,
            "entry_delay_ms": self.entry_delay_ms,
            "activity_move_bps": self.activity_move_bps,
        }

    def policy_params(self) -> dict[str, Any]:
        return {
            "interval": self.interval,
            "horizon_ms": self.horizon_ms,
            "entry_delay_ms": self.entry_delay_ms,
            "fee_bps": self.fee_bps,
            "slippage_bps": self.slippage_bps,
        }

    def all_params(self) -> dict[str, Any]:
        return {**self.truth_params(), **self.policy_params()}


class CallsSourceResource(dg.ConfigurableResource):
    """Calls (alerts) from a DuckDB table or view, a Parquet file or a CSV file."""

    path: str = Field(description="alerts.duckdb, calls.parquet or calls.csv")
    table: str = Field(default="alerts", description="Table or view, for DuckDB files")
    sample_data_dir: str | None = Field(
        default=None, description="Generate the sample data here first if it is missing"
    )
    url: str | None = Field(
        default=None, description="s3://... the calls live at; `path` is then their local mirror"
    )

    def identity(self) -> str:
        """Which source this is (its content is hashed per day: truth_identity)."""
        path = Path(self.path).resolve()
        where = self.url or str(path)  # a URL is the same on every machine, a mirror is not
        return f"{where}#{self.table}" if path.suffix == ".duckdb" else where

    def load(self, start_ms: int, end_ms: int) -> CallsLoad:
        if self.url:
            sync_mirror(self.url, Path(self.path))
        elif self.sample_data_dir and not Path(self.path).exists():
            ensure_sample_data(Path(self.sample_data_dir))
        return load_calls(calls_source_from_path(Path(self.path), self.table), start_ms, end_ms)


class CandleSourceResource(dg.ConfigurableResource):
    """OHLCV bars from a Parquet file or dataset directory, or a DuckDB table."""

    path: str = Field(description="Parquet file, Parquet dataset directory or .duckdb file")
    table: str = Field(default="candles", description="Table or view, for DuckDB files")
    url: str | None = Field(
        default=None, description="s3://... the candles live at; `path` is then their local mirror"
    )

    def identity(self) -> str:
        """Which candle store this is (a result computed from another is never reused)."""
        path = Path(self.path).resolve()
        where = self.url or str(path)
        return f"{where}#{self.table}" if path.suffix == ".duckdb" else where

    def load(self, keys: pd.DataFrame, start_ms: int, end_ms: int) -> pd.DataFrame:
        if self.url:
            sync_mirror(self.url, Path(self.path))
        # Categorical keys: no per-row string decoding, and what prepare_candles reads fastest;
        # unsorted: prepare_candles groups the rows by series itself.
        return load_candles(
            candle_source_from_path(Path(self.path), self.table),
            keys,
            start_ms,
            end_ms,
            categorical=True,
            sort=False,
        )


class PolicyRegistryResource(dg.ConfigurableResource):
    """The policy registry file (policies.yaml)."""

    path: str
