"""Truth layer: one `paths` row per entered call (SEMANTICS "Truth layer")."""

from __future__ import annotations

import numpy as np
import pandas as pd
from numba import njit

from quantbot_assets import schemas
from quantbot_assets.engine.calls import (
    ENTERED,
    INVALID_ENTRY_PRICE,
    NO_CANDLES,
    as_prepared,
    call_arrays,
    check_alerts,
    check_run_params,
    excluded_frame,
    nullable_int,
)
from quantbot_assets.engine.candles import PreparedCandles
from quantbot_assets.engine.threads import split_map
from quantbot_assets.engine.windows import complete_flags, proven_hl, valid_price, window
from quantbot_assets.params import DEFAULT_HORIZON_MS

PATHS_COLUMNS = schemas.PATHS.names


def truth_kernel(ts, o, h, lo, offsets, series, alert_ts, entry_delay_ms, horizon_ms, move):  # type: ignore[no-untyped-def]
    """Per call: status, entry index, window end, first 2x/3x/4x/peak/activity bar indices
    (-1 = none), peak high, min low, min low up to the first 2x bar."""
    n = len(series)
    status = np.empty(n, np.int8)
    e_out = np.zeros(n, np.int64)
    end_out = np.zeros(n, np.int64)
    idx = np.full((n, 5), -1, np.int64)  # 2x, 3x, 4x, peak, activity
    vals = np.full((n, 3), np.nan)  # peak high, min low, min low to 2x
    out = (status, e_out, end_out, idx, vals)
    args = (ts, o, h, lo, offsets, series, alert_ts, entry_delay_ms, horizon_ms, move)
    split_map(lambda a, b: _truth_range(*args, a, b, *out), n, 16)
    return out


@njit(cache=True, nogil=True)
def _truth_range(
    ts,
    o,
    h,
    lo,
    offsets,
    series,
    alert_ts,
    entry_delay_ms,
    horizon_ms,
    move,
    a,
    b,
    status,
    e_out,
    end_out,
    idx,
    vals,
):  # type: ignore[no-untyped-def]
    for k in range(a, b):
        e, end = window(ts, offsets, series[k], alert_ts[k], entry_delay_ms, horizon_ms)
        e_out[k] = e
        end_out[k] = end
        if e >= end:
            status[k] = NO_CANDLES
            continue
        p0 = o[e]
        if not valid_price(p0):
            status[k] = INVALID_ENTRY_PRICE
            continue
        status[k] = ENTERED
        p2 = 2.0 * p0
        p3 = 3.0 * p0
        p4 = 4.0 * p0
        up = p0 * (1.0 + move)
        dn = p0 * (1.0 - move)
        peak = -np.inf
        ipeak = -1
        mn = np.inf
        i2 = -1
        i3 = -1
        i4 = -1
        iact = -1
        mn2 = np.nan
        # Comparisons with NaN are false, so NaN highs/lows never fire and are skipped by the
        # running max/min (SEMANTICS: a NaN price proves nothing).
        for j in range(e, end):
            hj = h[j]
            lj = lo[j]
            # Raw fields decide whether anything can change on this bar (rarely: a new peak or
            # trough, a first crossing); only then are they checked (`proven_hl`) and the
            # tests rerun on proven values. Keeps the common bar to two loads and four compares.
            if not (
                hj > peak
                or lj < mn
                or (iact < 0 and (hj >= up or lj <= dn))
                or (i4 < 0 and hj >= p2)
            ):
                continue
            hj, lj = proven_hl(hj, lj)
            if hj > peak:
                peak = hj
                ipeak = j
            if lj < mn:
                mn = lj
            if iact < 0 and (hj >= up or lj <= dn):
                iact = j
            if i4 < 0 and hj >= p2:
                if i2 < 0:
                    i2 = j
                    mn2 = mn
                if i3 < 0 and hj >= p3:
                    i3 = j
                if hj >= p4:
                    i4 = j
        idx[k, 0] = i2
        idx[k, 1] = i3
        idx[k, 2] = i4
        idx[k, 3] = ipeak
        idx[k, 4] = iact
        vals[k, 0] = peak
        vals[k, 1] = mn
        vals[k, 2] = mn2


def _paths_frame(
    alerts: pd.DataFrame,
    prepared: PreparedCandles,
    status: np.ndarray,
    e: np.ndarray,
    end: np.ndarray,
    idx: np.ndarray,
    vals: np.ndarray,
    complete: np.ndarray,
    run_id: str,
) -> pd.DataFrame:
    ok = status == ENTERED
    e, end, idx, vals = e[ok], end[ok], idx[ok], vals[ok]
    ts = prepared.ts
    p0 = prepared.open[e]
    t0 = ts[e]

    def bar_ts(col: int) -> tuple[np.ndarray, np.ndarray]:
        j = idx[:, col]
        null = j < 0
        return np.where(null, 0, ts[np.where(null, e, j)]), null

    # A window whose highs (lows) are all NaN has no proven max (min): the entry open is the
    # only proven price, so the peak (trough) falls back to p0 at t0.
    peak = np.where(np.isfinite(vals[:, 0]), vals[:, 0], p0)
    trough = np.where(np.isfinite(vals[:, 1]), vals[:, 1], p0)
    peak_ts, peak_null = bar_ts(3)
    peak_ts = np.where(peak_null, t0, peak_ts)
    t2, n2 = bar_ts(0)
    t3, n3 = bar_ts(1)
    t4, n4 = bar_ts(2)
    tact, nact = bar_ts(4)
    trough2 = np.where(np.isfinite(vals[:, 2]), vals[:, 2], p0)
    sub = alerts.loc[ok] if not ok.all() else alerts
    alert_ts = sub["alert_ts_ms"].to_numpy(dtype=np.int64)
    cols = {
        "run_id": np.full(len(sub), run_id, dtype=object),
        "call_id": sub["call_id"].to_numpy(dtype=object),
        "caller_name": sub["caller_name"].to_numpy(dtype=object),
        "mint": sub["mint"].to_numpy(dtype=object),
        "chain": sub["chain"].to_numpy(dtype=object),
        "interval": np.full(len(sub), prepared.interval, dtype=object),
        "alert_ts_ms": alert_ts,
        "t0_ms": t0,
        "p0": p0,
        "hit_2x": ~n2,
        "t_2x_ms": nullable_int(t2, n2),
        "hit_3x": ~n3,
        "t_3x_ms": nullable_int(t3, n3),
        "hit_4x": ~n4,
        "t_4x_ms": nullable_int(t4, n4),
        "peak_multiple": peak / p0,
        "peak_ts_ms": peak_ts,
        "dd_bps": (trough / p0 - 1.0) * 10000.0,
        "dd_to_2x_bps": np.where(n2, np.nan, (trough2 / p0 - 1.0) * 10000.0),
        "alert_to_activity_ms": nullable_int(tact - alert_ts, nact),
        "bars": (end - e).astype(np.int64),
        "window_complete": complete[ok],
    }
    return pd.DataFrame(cols, columns=PATHS_COLUMNS)


def compute_paths(
    alerts: pd.DataFrame,
    candles: pd.DataFrame | PreparedCandles,
    *,
    interval: str = "1m",
    horizon_ms: int = DEFAULT_HORIZON_MS,
    entry_delay_ms: int = 0,
    activity_move_bps: float = 1000,
    run_id: str = "",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(paths, excluded): one paths row per entered call, one [call_id, reason] row per
    excluded call (no_candles | invalid_entry_price)."""
    check_alerts(alerts)
    check_run_params(horizon_ms, entry_delay_ms)
    if not activity_move_bps >= 0:
        raise ValueError(f"activity_move_bps must be >= 0, got {activity_move_bps}")
    prepared = as_prepared(candles, interval)
    series, alert_ts = call_arrays(alerts, prepared)
    status, e, end, idx, vals = truth_kernel(
        prepared.ts,
        prepared.open,
        prepared.high,
        prepared.low,
        prepared.offsets,
        series,
        alert_ts,
        np.int64(entry_delay_ms),
        np.int64(horizon_ms),
        float(activity_move_bps) / 10000.0,
    )
    # window_complete looks past the window by definition (is there data after the horizon?);
    # no other column reads a bar at or after alert + horizon.
    complete = complete_flags(prepared, series, alert_ts, horizon_ms)
    paths = _paths_frame(alerts, prepared, status, e, end, idx, vals, complete, run_id)
    return paths, excluded_frame(alerts, status)
