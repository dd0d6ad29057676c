"""Entry bar and window of one call, shared by the truth and policy kernels (SEMANTICS "Entry")."""

from __future__ import annotations

import numpy as np
from numba import njit

from quantbot_assets.engine.candles import interval_ms


@njit(cache=True, nogil=True, inline="always")
def lower_bound(ts, a, b, x):  # type: ignore[no-untyped-def]
    """First index in [a, b) with ts[i] >= x (b if none)."""
    while a < b:
        mid = (a + b) >> 1
        if ts[mid] < x:
            a = mid + 1
        else:
            b = mid
    return a


@njit(cache=True, nogil=True, inline="always")
def window(ts, offsets, series, alert_ts, entry_delay_ms, horizon_ms):  # type: ignore[no-untyped-def]
    """(e, end): entry bar and one past the last bar of W; e == end when there is no entry."""
    if series < 0:
        return 0, 0
    a = offsets[series]
    b = offsets[series + 1]
    stop = alert_ts + horizon_ms
    end = lower_bound(ts, a, b, stop)
    e = lower_bound(ts, a, end, alert_ts + entry_delay_ms)
    return e, end


@njit(cache=True, nogil=True, inline="always")
def valid_price(x: float) -> bool:
    return x > 0.0 and x < np.inf


@njit(cache=True, nogil=True, inline="always")
def proven(x: float) -> float:
    """The price if it is one (finite, > 0), else NaN: a malformed field proves nothing.
    Kernels apply this to every field they read, so they give the same numbers on raw bars as
    on bars `prepare_candles` has already sanitised."""
    return x if (x > 0.0) & (x < np.inf) else np.nan


@njit(cache=True, nogil=True, inline="always")
def proven_hl(h: float, lo: float) -> tuple[float, float]:
    """(high, low) as proven prices; both NaN when high < low (which one is wrong is unknown)."""
    hp = proven(h)
    lp = proven(lo)
    if hp < lp:
        return np.nan, np.nan
    return hp, lp


# ---- what to load ----------------------------------------------------------------------------

WINDOW_COMPLETE_PROBE_MS = 3_600_000
"""How far past a window's end (alert + horizon) candles are loaded: a bar there proves that
the data runs past the window (`window_complete`, SEMANTICS "Truth layer"). Such bars never
enter a metric: every kernel cuts W at the first bar with ts >= alert + horizon."""


def candle_load_range(
    alerts_ms_min: int, alerts_ms_max: int, entry_delay_ms: int, horizon_ms: int, interval: str
) -> tuple[int, int]:
    """[start_ms, end_ms) of the 1m (or native) bars to load for calls alerted in
    [alerts_ms_min, alerts_ms_max] so that every `interval` bar of every window is whole.

    start = alerts_ms_min + entry_delay_ms floored to the interval: the bucket holding the
    entry time gets all its minutes. end = alerts_ms_max + horizon_ms rounded up to the
    interval, plus max(WINDOW_COMPLETE_PROBE_MS, interval): the bucket holding the last
    in-window time gets all its minutes (a resampled bar equals a native one, SEMANTICS
    "Candle"), and the probe shows whether the data runs past the window. Membership in W is
    still decided by the bucket's open time (ts_e <= ts < alert + horizon)."""
    step = interval_ms(interval)
    first = int(alerts_ms_min) + int(entry_delay_ms)
    last = int(alerts_ms_max) + int(horizon_ms)
    start = first - first % step
    end = -(-last // step) * step + max(WINDOW_COMPLETE_PROBE_MS, step)
    return start, end
