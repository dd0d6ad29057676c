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


# ---- window completeness and the candle range a run needs --------------------------------------

# `window_complete` asks whether the data runs past a call's horizon. Only bars in
# [alert + horizon, alert + horizon + probe) are looked at, probe = max(this, the interval), so
# the answer does not depend on how far past the horizon a loader happened to read: the candle
# loader reads up to the last alert + horizon + probe (`candle_load_range`), and a series with no
# bar within that probe after a call's horizon counts as cut short (false, the cautious answer).
WINDOW_COMPLETE_PROBE_MS = 3_600_000


def window_complete_probe_ms(interval_ms: int) -> int:
    """How far past the horizon a bar is looked for: max(WINDOW_COMPLETE_PROBE_MS, interval)."""
    return max(WINDOW_COMPLETE_PROBE_MS, int(interval_ms))


@njit(cache=True, nogil=True)
def window_complete_kernel(ts, offsets, series, alert_ts, horizon_ms, probe_ms):  # type: ignore[no-untyped-def]
    """Per call: the series has a bar with alert + horizon <= ts < alert + horizon + probe.
    (A bar, not a price: a bar with malformed prices still proves the data goes on.)"""
    n = len(series)
    out = np.zeros(n, np.bool_)
    for k in range(n):
        s = series[k]
        if s < 0:
            continue
        a = offsets[s]
        b = offsets[s + 1]
        stop = alert_ts[k] + horizon_ms
        i = lower_bound(ts, a, b, stop)
        out[k] = i < b and ts[i] < stop + probe_ms
    return out


def candle_load_range(
    alert_ts_ms: np.ndarray | list[int],
    *,
    interval_ms: int,
    horizon_ms: int,
    entry_delay_ms: int = 0,
) -> tuple[int, int] | None:
    """[start_ms, end_ms) of the candles a run over these alert times needs (None when there
    are no alerts): start = earliest alert + entry delay, floored to the interval (whole
    buckets; no bar before the entry time is ever read), end =
    latest alert + horizon + probe (every bar of every window, the last coarse bar's minutes,
    and the bars `window_complete` looks for). The same range serves the 1m bars of a
    drill-down."""
    ts = np.asarray(alert_ts_ms, dtype=np.int64)
    if ts.size == 0:
        return None
    # Whole buckets from the first one an entry can fall in: a coarse bar built from 1m bars
    # then holds every minute the store has, whichever run prepared it, so prepared candles
    # of several runs agree bar for bar (merge_prepared) and equal a native coarse store.
    first = int(ts.min()) + int(entry_delay_ms)
    start = first - first % int(interval_ms)
    last = int(ts.max()) + int(horizon_ms) + window_complete_probe_ms(interval_ms)
    end = -(-last // int(interval_ms)) * int(interval_ms)
    return start, end


def complete_flags(
    prepared, series: np.ndarray, alert_ts: np.ndarray, horizon_ms: int
) -> np.ndarray:  # type: ignore[no-untyped-def]
    """`window_complete` of each call on `prepared` candles (see WINDOW_COMPLETE_PROBE_MS)."""
    return window_complete_kernel(
        prepared.ts,
        prepared.offsets,
        series,
        alert_ts,
        np.int64(horizon_ms),
        np.int64(window_complete_probe_ms(prepared.interval_ms)),
    )
