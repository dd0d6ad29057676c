"""Policy layer: replay of one (flattened) policy per entered call (SEMANTICS "Policy layer")."""

from __future__ import annotations

import math

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
)
from quantbot_assets.engine.candles import PreparedCandles
from quantbot_assets.engine.policy import (
    ENC_HEADER,
    FRACTION_TOLERANCE,
    Policy,
    encode_policy,
    parse_policy,
)
from quantbot_assets.engine.threads import split_map
from quantbot_assets.engine.truth import DEFAULT_HORIZON_MS
from quantbot_assets.engine.windows import lower_bound, proven, proven_hl, valid_price, window

TRADES_COLUMNS = schemas.TRADES.names
EXIT_REASONS = np.array(
    [
        "time_stop",
        "stop_loss",
        "hard_stop",
        "trailing_stop",
        "take_profit",
        "ladder_complete",
        "end_of_window",
    ],
    dtype=object,
)
R_TIME, R_STOP, R_HARD, R_TRAIL, R_TP, R_LADDER, R_END = range(7)


@njit(cache=True, nogil=True, inline="always")
def level_below(p0: float, bps: float) -> float:
    """p0 * (1 - bps / 10000); -inf (never fires) when the stop is absent (NaN)."""
    if bps != bps:
        return -np.inf
    return p0 * (1.0 - bps / 10000.0)


@njit(cache=True, nogil=True, inline="always")
def level_above(p0: float, bps: float) -> float:
    if bps != bps:
        return np.inf
    return p0 * (1.0 + bps / 10000.0)


@njit(cache=True, nogil=True)
def window_peak(h, lo, e, end):  # type: ignore[no-untyped-def]
    """Highest proven high of W; -inf when none is proven. Reads the low only for a bar whose
    high would raise the peak (a running max rises rarely), halving the memory traffic."""
    peak = -np.inf
    for j in range(e, end):
        if h[j] > peak:
            hj, _ = proven_hl(h[j], lo[j])
            if hj > peak:
                peak = hj
    return peak


@njit(cache=True, nogil=True)
def end_of_window_bar(c, lo_bar, end):  # type: ignore[no-untyped-def]
    """Last bar in [lo_bar, end) with a proven close, -1 if none."""
    for j in range(end - 1, lo_bar - 1, -1):
        if valid_price(c[j]):
            return j
    return -1


@njit(cache=True, nogil=True)
def min_low(h, lo, a, b):  # type: ignore[no-untyped-def]
    mn = np.inf
    for j in range(a, b):
        _, lj = proven_hl(h[j], lo[j])
        if lj < mn:
            mn = lj
    return mn


@njit(cache=True, nogil=True)
def finish(p0, peak, wsum, size, minp, slip, fee):  # type: ignore[no-untyped-def]
    """(entry_px, exit_px, realized_return_bps, mae_bps, tail_capture) from the fills."""
    entry_px = p0 * (1.0 + slip / 10000.0)
    exit_px = wsum / size
    gross = (exit_px / entry_px - 1.0) * 10000.0
    mae = 0.0
    if minp < np.inf:
        mae = min(0.0, (minp / p0 - 1.0) * 10000.0)
    pm = peak / p0 if peak > -np.inf else 1.0
    tail = gross / ((pm - 1.0) * 10000.0) if pm > 1.0 else np.nan
    return entry_px, exit_px, gross - 2.0 * fee, mae, tail


@njit(cache=True, nogil=True)
def replay_one(
    ts, o, h, lo, c, e, end, enc, slip, fee, tr_act, tr_keep, lad_px, lad_frac, lad_done
):  # type: ignore[no-untyped-def]
    """Replay one flattened policy on W = [e, end). Returns (exit bar, reason, stop_out,
    entry_px, exit_px, realized_bps, mae_bps, tail_capture). tr_* and lad_* are scratch
    arrays sized for the policy (allocated once per chunk of calls, not per call)."""
    p0 = o[e]
    keep = 1.0 - slip / 10000.0
    hold = enc[0]
    stop = level_below(p0, enc[1])
    hard = level_below(p0, enc[2])
    tp = level_above(p0, enc[3])
    ntr = int(enc[4])
    nlad = int(enc[5])
    hold_idx = end
    if hold == hold:
        hold_idx = lower_bound(ts, e, end, np.int64(math.ceil(ts[e] + hold)))
    for k in range(ntr):
        tr_act[k] = level_above(p0, enc[ENC_HEADER + 2 * k])
        tr_keep[k] = 1.0 - enc[ENC_HEADER + 2 * k + 1] / 10000.0
    lad_done[:] = False
    frac_total = 0.0
    base = ENC_HEADER + 2 * ntr
    for i in range(nlad):
        lad_px[i] = p0 * enc[base + 2 * i]
        lad_frac[i] = enc[base + 2 * i + 1]
        frac_total += lad_frac[i]
    n_done = 0
    filled = 0.0  # fraction sold by ladder levels
    wsum = 0.0  # sum of size * fill price after slippage
    peak_prev = -np.inf  # highest high of bars e .. j-1
    minp = np.inf  # lowest low of bars e .. j (last bar: the fill price where SEMANTICS says)
    reason = R_END
    stop_out = False
    x = -1
    closed = False
    for j in range(e, end):
        oj = proven(o[j])
        hj, lj = proven_hl(h[j], lo[j])
        # 1. time stop (a NaN open proves no price: wait for a bar with a proven open)
        if j >= hold_idx and oj == oj:
            closed = True
            wsum += (1.0 - filled) * (oj * keep)
            minp = min(minp, oj)
            reason = R_TIME
            x = j
            break
        # 2. stops: the highest level wins; ties keep the order stop_loss, hard_stop, trailing
        best = stop
        r = R_STOP
        if hard > best:
            best = hard
            r = R_HARD
        for k in range(ntr):
            if peak_prev >= tr_act[k]:
                t = peak_prev * tr_keep[k]
                if t > best:
                    best = t
                    r = R_TRAIL
        if best > -np.inf:
            fill = np.nan
            if oj <= best:
                fill = oj
            elif lj <= best:
                fill = best
            if fill == fill:
                closed = True
                wsum += (1.0 - filled) * (fill * keep)
                minp = min(minp, fill)
                reason = r
                stop_out = True
                x = j
                break
        # 3. take profit / ladder levels
        if nlad == 0:
            if oj >= tp:
                closed = True
                wsum += oj * keep
                minp = min(minp, oj)
                reason = R_TP
                x = j
                break
            if hj >= tp:
                closed = True
                wsum += tp * keep
                if lj < minp:
                    minp = lj
                reason = R_TP
                x = j
                break
        else:
            intrabar = False
            at_open = False
            for i in range(nlad):
                if lad_done[i]:
                    continue
                if oj >= lad_px[i]:
                    wsum += lad_frac[i] * (oj * keep)
                    at_open = True
                elif hj >= lad_px[i]:
                    wsum += lad_frac[i] * (lad_px[i] * keep)
                    intrabar = True
                else:
                    continue
                lad_done[i] = True
                n_done += 1
                filled += lad_frac[i]
            if intrabar or at_open:
                reason = R_TP
                x = j
                if n_done == nlad and abs(frac_total - 1.0) <= FRACTION_TOLERANCE:
                    reason = R_LADDER
                    closed = True
                    # fills at the open come first: the last fill is intrabar if any was
                    if intrabar:
                        if lj < minp:
                            minp = lj
                    else:
                        minp = min(minp, oj)
                    break
        # 4. this bar's high arms trails for the next bar; its low joins the excursion
        if lj < minp:
            minp = lj
        if hj > peak_prev:
            peak_prev = hj
    if not closed:
        # End of window: the rest exits at the close of the last bar with a proven close
        # (never before the last fill); failing that at the last proven open, failing that p0.
        first = x if x >= 0 else e
        xe = end_of_window_bar(c, first, end)
        px = np.nan
        if xe >= 0:
            px = c[xe]
        else:
            xe = end_of_window_bar(o, first, end)
            if xe >= 0:
                px = o[xe]
            else:
                xe = first
                px = p0
        wsum += (1.0 - filled) * (px * keep)
        reason = R_END
        if xe != end - 1:
            minp = min_low(h, lo, e, xe + 1)
        x = xe
    size = 1.0
    if nlad > 0:
        size = filled if reason == R_LADDER else filled + (1.0 - filled)
    peak = window_peak(h, lo, e, end)
    entry_px, exit_px, realized, mae, tail = finish(p0, peak, wsum, size, minp, slip, fee)
    return x, reason, stop_out, entry_px, exit_px, realized, mae, tail


def replay_kernel(
    ts, o, h, lo, c, offsets, series, alert_ts, entry_delay_ms, horizon_ms, enc, slip, fee
):  # type: ignore[no-untyped-def]
    """Per call: status, entry bar, exit bar, reason code, stop_out and
    [entry_px, exit_px, realized, mae, tail]."""
    n = len(series)
    status = np.empty(n, np.int8)
    e_out = np.zeros(n, np.int64)
    x_out = np.zeros(n, np.int64)
    reason = np.zeros(n, np.int8)
    stop_out = np.zeros(n, np.bool_)
    vals = np.full((n, 5), np.nan)  # entry_px, exit_px, realized, mae, tail
    out = (status, e_out, x_out, reason, stop_out, vals)
    args = (ts, o, h, lo, c, offsets, series, alert_ts, entry_delay_ms, horizon_ms, enc, slip, fee)
    split_map(lambda a, b: _replay_range(*args, a, b, *out), n, 16)
    return out


@njit(cache=True, nogil=True)
def _replay_range(
    ts,
    o,
    h,
    lo,
    c,
    offsets,
    series,
    alert_ts,
    entry_delay_ms,
    horizon_ms,
    enc,
    slip,
    fee,
    a0,
    b0,
    status,
    e_out,
    x_out,
    reason,
    stop_out,
    vals,
):  # type: ignore[no-untyped-def]
    ntr = int(enc[4])
    nlad = int(enc[5])
    tr_act = np.empty(ntr)
    tr_keep = np.empty(ntr)
    lad_px = np.empty(nlad)
    lad_frac = np.empty(nlad)
    lad_done = np.zeros(nlad, np.bool_)
    for k in range(a0, b0):
        e, end = window(ts, offsets, series[k], alert_ts[k], entry_delay_ms, horizon_ms)
        e_out[k] = e
        if e >= end:
            status[k] = NO_CANDLES
            continue
        if not valid_price(o[e]):
            status[k] = INVALID_ENTRY_PRICE
            continue
        status[k] = ENTERED
        x, r, so, entry_px, exit_px, rr, mae, tail = replay_one(
            ts, o, h, lo, c, e, end, enc, slip, fee, tr_act, tr_keep, lad_px, lad_frac, lad_done
        )
        x_out[k] = x
        reason[k] = r
        stop_out[k] = so
        vals[k, 0] = entry_px
        vals[k, 1] = exit_px
        vals[k, 2] = rr
        vals[k, 3] = mae
        vals[k, 4] = tail


def trades_frame(
    alerts: pd.DataFrame,
    ts: np.ndarray,
    status: np.ndarray,
    e: np.ndarray,
    x: np.ndarray,
    reason: np.ndarray,
    stop_out: np.ndarray,
    vals: np.ndarray,
    policy_id: str,
    run_id: str,
) -> pd.DataFrame:
    ok = status == ENTERED
    sub = alerts.loc[ok] if not ok.all() else alerts
    entry_ts = ts[e[ok]]
    exit_ts = ts[x[ok]]
    v = vals[ok]
    n = len(sub)
    cols = {
        "run_id": np.full(n, run_id, dtype=object),
        "policy_id": np.full(n, policy_id, dtype=object),
        "call_id": sub["call_id"].to_numpy(dtype=object),
        "caller_name": sub["caller_name"].to_numpy(dtype=object),
        "mint": sub["mint"].to_numpy(dtype=object),
        "chain": sub["chain"].to_numpy(dtype=object),
        "entry_ts_ms": entry_ts,
        "entry_px": v[:, 0],
        "exit_ts_ms": exit_ts,
        "exit_px": v[:, 1],
        "exit_reason": EXIT_REASONS[reason[ok]],
        "realized_return_bps": v[:, 2],
        "stop_out": stop_out[ok],
        "max_adverse_excursion_bps": v[:, 3],
        "time_exposed_ms": exit_ts - entry_ts,
        "tail_capture": v[:, 4],
    }
    return pd.DataFrame(cols, columns=TRADES_COLUMNS)


def check_costs(fee_bps: float, slippage_bps: float) -> None:
    if not (fee_bps >= 0 and math.isfinite(fee_bps)):
        raise ValueError(f"fee_bps must be a finite number >= 0, got {fee_bps}")
    if not (0 <= slippage_bps < 10000):
        raise ValueError(f"slippage_bps must be in [0, 10000), got {slippage_bps}")


def simulate_policy(
    alerts: pd.DataFrame,
    candles: pd.DataFrame | PreparedCandles,
    policy: str | dict | Policy,
    *,
    policy_id: str,
    interval: str = "1m",
    horizon_ms: int = DEFAULT_HORIZON_MS,
    entry_delay_ms: int = 0,
    fee_bps: float = 0.0,
    slippage_bps: float = 0.0,
    run_id: str = "",
) -> pd.DataFrame:
    """One trades row per entered call (columns of schemas.TRADES)."""
    parsed = parse_policy(policy)  # before any work
    check_alerts(alerts)
    check_run_params(horizon_ms, entry_delay_ms)
    check_costs(fee_bps, slippage_bps)
    prepared = as_prepared(candles, interval)
    series, alert_ts = call_arrays(alerts, prepared)
    status, e, x, reason, stop_out, vals = replay_kernel(
        prepared.ts,
        prepared.open,
        prepared.high,
        prepared.low,
        prepared.close,
        prepared.offsets,
        series,
        alert_ts,
        np.int64(entry_delay_ms),
        np.int64(horizon_ms),
        encode_policy(parsed),
        float(slippage_bps),
        float(fee_bps),
    )
    return trades_frame(
        alerts, prepared.ts, status, e, x, reason, stop_out, vals, policy_id, run_id
    )
