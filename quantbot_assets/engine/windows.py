"""Entry bar and window of one call, shared by the truth and policy kernels (SEMANTICS "Entry")."""

from __future__ import annotations

import numpy as np
from numba import njit


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
