"""Calls (alerts) checked and tied to candle series; windows are found in the kernels."""

from __future__ import annotations

import numpy as np
import pandas as pd

from quantbot_assets.engine.candles import PreparedCandles, interval_ms, prepare_for_kernels

ALERT_COLUMNS = ["call_id", "mint", "caller_name", "chain", "alert_ts_ms"]
EXCLUDED_COLUMNS = ["call_id", "reason"]
# Status codes written by the kernels.
ENTERED, NO_CANDLES, INVALID_ENTRY_PRICE = 0, 1, 2
EXCLUSION_REASONS = {NO_CANDLES: "no_candles", INVALID_ENTRY_PRICE: "invalid_entry_price"}


def check_alerts(alerts: pd.DataFrame) -> None:
    """Refuse alerts the engine cannot read, naming the column."""
    missing = [c for c in ALERT_COLUMNS if c not in alerts.columns]
    if missing:
        raise ValueError(f"alerts: missing columns {missing}")
    for col in ALERT_COLUMNS:
        if alerts[col].isna().any():
            raise ValueError(f"alerts column {col!r} has null values")
    if not pd.api.types.is_integer_dtype(alerts["alert_ts_ms"].dtype):
        raise ValueError(
            f"alerts column 'alert_ts_ms' must hold integer epoch milliseconds, got {alerts['alert_ts_ms'].dtype}"
        )
    dup = alerts["call_id"].duplicated()
    if dup.any():
        raise ValueError(
            f"alerts column 'call_id' has duplicates, e.g. {alerts['call_id'][dup].iloc[0]!r}"
        )


def check_run_params(horizon_ms: int, entry_delay_ms: int) -> None:
    if horizon_ms <= 0:
        raise ValueError(f"horizon_ms must be > 0, got {horizon_ms}")
    if entry_delay_ms < 0:
        raise ValueError(f"entry_delay_ms must be >= 0, got {entry_delay_ms}")


def as_prepared(candles: pd.DataFrame | PreparedCandles, interval: str) -> PreparedCandles:
    interval_ms(interval)
    if isinstance(candles, PreparedCandles):
        if candles.interval != interval:
            raise ValueError(
                f"interval: prepared candles are {candles.interval}, run asks for {interval}"
            )
        return candles
    return prepare_for_kernels(candles, interval)


def call_arrays(alerts: pd.DataFrame, prepared: PreparedCandles) -> tuple[np.ndarray, np.ndarray]:
    """(series index per call, -1 when the store has no such series; alert times)."""
    series = prepared.series_of(
        alerts["chain"].to_numpy(dtype=object), alerts["mint"].to_numpy(dtype=object)
    )
    return series, alerts["alert_ts_ms"].to_numpy(dtype=np.int64)


def excluded_frame(alerts: pd.DataFrame, status: np.ndarray) -> pd.DataFrame:
    out = status != ENTERED
    codes = status[out]
    reasons = np.empty(len(codes), dtype=object)
    for code, name in EXCLUSION_REASONS.items():
        reasons[codes == code] = name
    return pd.DataFrame(
        {"call_id": alerts["call_id"].to_numpy(dtype=object)[out], "reason": reasons},
        columns=EXCLUDED_COLUMNS,
    )


def nullable_int(values: np.ndarray, null: np.ndarray) -> pd.arrays.IntegerArray:
    return pd.arrays.IntegerArray(values.astype(np.int64), null)
