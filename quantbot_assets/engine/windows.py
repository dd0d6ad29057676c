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
