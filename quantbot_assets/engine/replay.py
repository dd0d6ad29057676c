"""Policy layer: replay of one (flattened) policy per entered call (SEMANTICS "Policy layer")."""

from __future__ import annotations

import math
from dataclasses import dataclass

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
from quantbot_assets.engine.candles import PreparedCandles, interval_ms
from quantbot_assets.engine.policy import (
    ENC_HEADER,
    FRACTION_TOLERANCE,
    Policy,
    encode_policy,
    parse_policy,
)
from quantbot_assets.engine.threads import split_map
from quantbot_assets.engine.windows import (
    complete_flags,
    lower_bound,
    proven,
    proven_hl,
    valid_price,
    window,
)
from quantbot_assets.params import DEFAULT_HORIZON_MS

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


@njit(cache=True, nogil=True, inline="always")
def return_bps(entry_px: float, exit_px: float, fee: float) -> float:
    """The fee is a share of each side's notional: never below -10000 for a price >= 0."""
    return (exit_px * (1.0 - fee / 10000.0) / (entry_px * (1.0 + fee / 10000.0)) - 1.0) * 10000.0


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
    return entry_px, exit_px, return_bps(entry_px, exit_px, fee), mae, tail


@njit(cache=True, nogil=True, inline="always")
def next_level(lad_px, lad_done, nlad):  # type: ignore[no-untyped-def]
    """The lowest ladder level not yet filled (inf when all are): a bar whose open and high
    stay under it fills no level, and the loops over the levels are skipped."""
    lo = np.inf
    for i in range(nlad):
        if not lad_done[i] and lad_px[i] < lo:
            lo = lad_px[i]
    return lo


@njit(cache=True, nogil=True)
def drill_down(
    fts,
    fo,
    fh,
    flo,
    fa,
    fb,
    t_from,
    t_to,
    best,
    r_best,
    tp,
    lad_px,
    lad_frac,
    lad_done,
    nlad,
    n_done,
    frac_total,
    filled,
    wsum,
    keep,
):  # type: ignore[no-untyped-def]
    """Replay one ambiguous coarse bar from the 1m bars of [t_from, t_to) (fine rows [fa, fb)),
    with the levels as of the start of the coarse bar: stop level `best` (reason r_best), take
    profit `tp` or the ladder's levels not yet filled (lad_done is a scratch copy, changed
    here), no time stop and no trail update. Returns (resolved, wsum, filled, reason,
    stop_out, minp, bars_read): resolved when the 1m bars close the position and none of them
    is itself ambiguous; minp is the lowest 1m low up to the deciding 1m bar (that bar's low
    replaced by its fill price for a stop or open fill, as on any exit bar)."""
    a = lower_bound(fts, fa, fb, t_from)
    b = lower_bound(fts, a, fb, t_to)
    minp = np.inf
    for m in range(a, b):
        om = proven(fo[m])
        hm, lm = proven_hl(fh[m], flo[m])
        if om <= best:  # gap through the stop at this minute's open
            wsum += (1.0 - filled) * (om * keep)
            return True, wsum, filled, r_best, True, min(minp, om), m - a + 1
        if nlad == 0:
            if om >= tp:
                wsum += om * keep
                return True, wsum, filled, R_TP, False, min(minp, om), m - a + 1
        else:
            at_open = False
            for i in range(nlad):
                if not lad_done[i] and om >= lad_px[i]:
                    wsum += lad_frac[i] * (om * keep)
                    lad_done[i] = True
                    n_done += 1
                    filled += lad_frac[i]
                    at_open = True
            if at_open and n_done == nlad and abs(frac_total - 1.0) <= FRACTION_TOLERANCE:
                return True, wsum, filled, R_LADDER, False, min(minp, om), m - a + 1
        if lm <= best:
            if om == om:  # an ambiguous minute: the 1m bars cannot tell either
                if nlad == 0:
                    if hm >= tp:
                        return False, wsum, filled, r_best, True, minp, m - a + 1
                else:
                    for i in range(nlad):
                        if not lad_done[i] and lad_px[i] <= hm:
                            return False, wsum, filled, r_best, True, minp, m - a + 1
            wsum += (1.0 - filled) * (best * keep)
            return True, wsum, filled, r_best, True, min(minp, best), m - a + 1
        if nlad == 0:
            if hm >= tp:
                wsum += tp * keep
                if lm < minp:
                    minp = lm
                return True, wsum, filled, R_TP, False, minp, m - a + 1
        else:
            for i in range(nlad):
                if not lad_done[i] and hm >= lad_px[i]:
                    wsum += lad_frac[i] * (lad_px[i] * keep)
                    lad_done[i] = True
                    n_done += 1
                    filled += lad_frac[i]
            if n_done == nlad and abs(frac_total - 1.0) <= FRACTION_TOLERANCE:
                if lm < minp:
                    minp = lm
                return True, wsum, filled, R_LADDER, False, minp, m - a + 1
        if lm < minp:
            minp = lm
    # no 1m bars, or the position is still open after them: the 1m bars prove no order
    return False, wsum, filled, r_best, True, minp, b - a


@njit(cache=True, nogil=True)
def replay_one(
    ts,
    o,
    h,
    lo,
    c,
    e,
    end,
    enc,
    slip,
    fee,
    tr_act,
    tr_keep,
    lad_px,
    lad_frac,
    lad_done,
    lad_tmp,
    fts,
    fo,
    fh,
    flo,
    fa,
    fb,
    step,
):  # type: ignore[no-untyped-def]
    """Replay one flattened policy on W = [e, end). Returns (exit bar, reason, stop_out,
    entry_px, exit_px, realized_bps, mae_bps, tail_capture, optimistic_bps, ambiguous,
    resolved, ambiguous before drill-down, 1m bars read). tr_*, lad_* are scratch arrays
    sized for the policy (allocated once per chunk of calls, not per call). fts..flo, rows
    [fa, fb): the call's 1m series for the drill-down (fa == fb: none); step: the coarse
    interval in ms (0: no drill-down)."""
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
    lad_next = next_level(lad_px, lad_done, nlad)  # lowest unfilled level (inf: none)
    n_done = 0
    filled = 0.0  # fraction sold by ladder levels
    wsum = 0.0  # sum of size * fill price after slippage
    peak_prev = -np.inf  # highest high of bars e .. j-1
    minp = np.inf  # lowest low of bars e .. j (last bar: the fill price where SEMANTICS says)
    reason = R_END
    stop_out = False
    x = -1
    closed = False
    ambiguous = False
    resolved = False
    was_ambiguous = False
    fine_read = 0
    opt_wsum = 0.0
    opt_size = 1.0
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
        # 2, at the open: a gap through the stop fills at the open
        if oj <= best:
            closed = True
            wsum += (1.0 - filled) * (oj * keep)
            minp = min(minp, oj)
            reason = r
            stop_out = True
            x = j
            break
        # 3a. take-profit / ladder levels crossed at the open fill there, before any stop
        # inside the bar (the open is the bar's first price)
        if nlad == 0:
            if oj >= tp:
                closed = True
                wsum += oj * keep
                minp = min(minp, oj)
                reason = R_TP
                x = j
                break
        elif oj >= lad_next:  # some unfilled level is at or under the open
            at_open = False
            for i in range(nlad):
                if not lad_done[i] and oj >= lad_px[i]:
                    wsum += lad_frac[i] * (oj * keep)
                    lad_done[i] = True
                    n_done += 1
                    filled += lad_frac[i]
                    at_open = True
            lad_next = next_level(lad_px, lad_done, nlad)
            if at_open:
                reason = R_TP
                x = j
                if n_done == nlad and abs(frac_total - 1.0) <= FRACTION_TOLERANCE:
                    reason = R_LADDER
                    closed = True
                    minp = min(minp, oj)
                    break
        # 2, inside the bar: what is open meets the stop before any level inside the bar
        if lj <= best:
            # Ambiguous: a level not yet filled lies in (open, high] (the open is above the
            # stop and under every unfilled level here; a NaN open proves neither).
            if oj == oj:
                if nlad == 0:
                    if hj >= tp:
                        ambiguous = True
                        opt_wsum = tp * keep
                else:
                    opt_wsum = wsum
                    opt_filled = filled
                    opt_done = n_done
                    for i in range(nlad):
                        if not lad_done[i] and lad_px[i] <= hj:
                            ambiguous = True
                            opt_wsum += lad_frac[i] * (lad_px[i] * keep)
                            opt_filled += lad_frac[i]
                            opt_done += 1
                    if opt_done == nlad and abs(frac_total - 1.0) <= FRACTION_TOLERANCE:
                        opt_size = opt_filled
                    else:
                        opt_wsum += (1.0 - opt_filled) * (best * keep)
            x = j
            closed = True
            if ambiguous:
                was_ambiguous = True
                if step > 0 and fa < fb:
                    for i in range(nlad):
                        lad_tmp[i] = lad_done[i]
                    ok, d_wsum, d_filled, d_reason, d_so, d_minp, fine_read = drill_down(
                        fts,
                        fo,
                        fh,
                        flo,
                        fa,
                        fb,
                        ts[j],
                        ts[j] + step,
                        best,
                        r,
                        tp,
                        lad_px,
                        lad_frac,
                        lad_tmp,
                        nlad,
                        n_done,
                        frac_total,
                        filled,
                        wsum,
                        keep,
                    )
                    if ok:
                        ambiguous = False
                        resolved = True
                        wsum = d_wsum
                        filled = d_filled
                        reason = d_reason
                        stop_out = d_so
                        minp = min(minp, d_minp)
                        break
            wsum += (1.0 - filled) * (best * keep)
            minp = min(minp, best)
            reason = r
            stop_out = True
            break
        # 3b. take profit / ladder levels inside the bar
        if nlad == 0:
            if hj >= tp:
                closed = True
                wsum += tp * keep
                if lj < minp:
                    minp = lj
                reason = R_TP
                x = j
                break
        elif hj >= lad_next:  # some unfilled level is inside the bar
            intrabar = False
            for i in range(nlad):
                if not lad_done[i] and hj >= lad_px[i]:
                    wsum += lad_frac[i] * (lad_px[i] * keep)
                    lad_done[i] = True
                    n_done += 1
                    filled += lad_frac[i]
                    intrabar = True
            lad_next = next_level(lad_px, lad_done, nlad)
            if intrabar:
                reason = R_TP
                x = j
                if n_done == nlad and abs(frac_total - 1.0) <= FRACTION_TOLERANCE:
                    reason = R_LADDER
                    closed = True
                    # fills at the open come first: the last fill is intrabar, keep the low
                    if lj < minp:
                        minp = lj
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
    optimistic = realized
    if ambiguous:
        optimistic = return_bps(entry_px, opt_wsum / opt_size, fee)
    return (
        x,
        reason,
        stop_out,
        entry_px,
        exit_px,
        realized,
        mae,
        tail,
        optimistic,
        ambiguous,
        resolved,
        was_ambiguous,
        fine_read,
    )


# vals columns of the kernels
V_ENTRY, V_EXIT, V_REALIZED, V_MAE, V_TAIL, V_OPT = range(6)
# flags columns: ambiguous (after drill-down), ambiguity_resolved, ambiguous before drill-down
F_AMBIGUOUS, F_RESOLVED, F_WAS_AMBIGUOUS = range(3)
N_VALS = 6
N_FLAGS = 3


@dataclass(frozen=True)
class Fine:
    """The 1m bars a coarse run may drill into: arrays of a PreparedCandles at 1m, each call's
    1m series (-1: none) and the coarse interval in ms (0: no drill-down)."""

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    offsets: np.ndarray
    series: np.ndarray
    step: int

    @staticmethod
    def none(n_calls: int) -> Fine:
        z = np.zeros(0, np.float64)
        return Fine(
            np.zeros(0, np.int64), z, z, z, np.zeros(1, np.int64), np.full(n_calls, -1, np.int64), 0
        )


def _same_series(a: PreparedCandles, b: PreparedCandles) -> bool:
    """Both hold the same (chain, mint) series in the same order (e.g. b resampled from a)."""
    if a.chain is b.chain and a.mint is b.mint:
        return True
    return (
        a.n_series == b.n_series
        and bool(np.array_equal(a.chain, b.chain))
        and bool(np.array_equal(a.mint, b.mint))
    )


def fine_for(
    fine: pd.DataFrame | PreparedCandles | None,
    alerts: pd.DataFrame,
    interval: str,
    coarse: PreparedCandles | None = None,
    coarse_series: np.ndarray | None = None,
) -> Fine:
    """The drill-down input of a run: none at 1m or without fine candles. `coarse`,
    `coarse_series`: the run's candles and the calls' series in them, reused when the 1m
    candles hold the same series (saves the lookup of every call's series)."""
    if fine is None or interval == "1m":
        return Fine.none(len(alerts))
    prepared = as_prepared(fine, "1m")
    if coarse is not None and coarse_series is not None and _same_series(prepared, coarse):
        series = coarse_series
    else:
        series, _ = call_arrays(alerts, prepared)
    return Fine(
        prepared.ts,
        prepared.open,
        prepared.high,
        prepared.low,
        prepared.offsets,
        series,
        interval_ms(interval),
    )


def replay_kernel(
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
    fine=None,
):  # type: ignore[no-untyped-def]
    """Per call: status, entry bar, exit bar, reason code, stop_out, vals [entry_px, exit_px,
    realized, mae, tail, optimistic], flags [ambiguous, resolved, was ambiguous] and the
    number of 1m bars read by drill-downs."""
    n = len(series)
    if fine is None:
        fine = Fine.none(n)
    status = np.empty(n, np.int8)
    e_out = np.zeros(n, np.int64)
    x_out = np.zeros(n, np.int64)
    reason = np.zeros(n, np.int8)
    stop_out = np.zeros(n, np.bool_)
    vals = np.full((n, N_VALS), np.nan)
    flags = np.zeros((n, N_FLAGS), np.bool_)
    fine_read = np.zeros(n, np.int64)
    out = (status, e_out, x_out, reason, stop_out, vals, flags, fine_read)
    args = (ts, o, h, lo, c, offsets, series, alert_ts, entry_delay_ms, horizon_ms, enc, slip, fee)
    fargs = (fine.ts, fine.open, fine.high, fine.low, fine.offsets, fine.series, fine.step)
    split_map(lambda a, b: _replay_range(*args, *fargs, a, b, *out), n, 16)
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
    fts,
    fo,
    fh,
    flo,
    foffsets,
    fseries,
    step,
    a0,
    b0,
    status,
    e_out,
    x_out,
    reason,
    stop_out,
    vals,
    flags,
    fine_read,
):  # type: ignore[no-untyped-def]
    ntr = int(enc[4])
    nlad = int(enc[5])
    tr_act = np.empty(ntr)
    tr_keep = np.empty(ntr)
    lad_px = np.empty(nlad)
    lad_frac = np.empty(nlad)
    lad_done = np.zeros(nlad, np.bool_)
    lad_tmp = np.zeros(nlad, np.bool_)
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
        fa = 0
        fb = 0
        if fseries[k] >= 0:
            fa = foffsets[fseries[k]]
            fb = foffsets[fseries[k] + 1]
        res = replay_one(
            ts,
            o,
            h,
            lo,
            c,
            e,
            end,
            enc,
            slip,
            fee,
            tr_act,
            tr_keep,
            lad_px,
            lad_frac,
            lad_done,
            lad_tmp,
            fts,
            fo,
            fh,
            flo,
            fa,
            fb,
            step,
        )
        x_out[k] = res[0]
        reason[k] = res[1]
        stop_out[k] = res[2]
        vals[k, V_ENTRY] = res[3]
        vals[k, V_EXIT] = res[4]
        vals[k, V_REALIZED] = res[5]
        vals[k, V_MAE] = res[6]
        vals[k, V_TAIL] = res[7]
        vals[k, V_OPT] = res[8]
        flags[k, F_AMBIGUOUS] = res[9]
        flags[k, F_RESOLVED] = res[10]
        flags[k, F_WAS_AMBIGUOUS] = res[11]
        fine_read[k] = res[12]


def trades_frame(
    alerts: pd.DataFrame,
    ts: np.ndarray,
    status: np.ndarray,
    e: np.ndarray,
    x: np.ndarray,
    reason: np.ndarray,
    stop_out: np.ndarray,
    vals: np.ndarray,
    flags: np.ndarray,
    complete: np.ndarray,
    policy_id: str,
    run_id: str,
) -> pd.DataFrame:
    ok = status == ENTERED
    sub = alerts.loc[ok] if not ok.all() else alerts
    entry_ts = ts[e[ok]]
    exit_ts = ts[x[ok]]
    v = vals[ok]
    f = flags[ok]
    n = len(sub)
    cols = {
        "run_id": np.full(n, run_id, dtype=object),
        "policy_id": np.full(n, policy_id, dtype=object),
        "call_id": sub["call_id"].to_numpy(dtype=object),
        "caller_name": sub["caller_name"].to_numpy(dtype=object),
        "mint": sub["mint"].to_numpy(dtype=object),
        "chain": sub["chain"].to_numpy(dtype=object),
        "entry_ts_ms": entry_ts,
        "entry_px": v[:, V_ENTRY],
        "exit_ts_ms": exit_ts,
        "exit_px": v[:, V_EXIT],
        "exit_reason": EXIT_REASONS[reason[ok]],
        "realized_return_bps": v[:, V_REALIZED],
        "stop_out": stop_out[ok],
        "max_adverse_excursion_bps": v[:, V_MAE],
        "time_exposed_ms": exit_ts - entry_ts,
        "tail_capture": v[:, V_TAIL],
        "ambiguous": f[:, F_AMBIGUOUS],
        "ambiguity_resolved": f[:, F_RESOLVED],
        "optimistic_return_bps": v[:, V_OPT],
        "window_complete": complete[ok],
    }
    return pd.DataFrame(cols, columns=TRADES_COLUMNS)


def drilldown_stats(status: np.ndarray, flags: np.ndarray, fine_read: np.ndarray) -> dict[str, int]:
    """What the drill-down did (DataFrame attrs of simulate_policy's result)."""
    ok = status == ENTERED
    return {
        "ambiguous_bars": int(flags[ok, F_WAS_AMBIGUOUS].sum()),
        "resolved_bars": int(flags[ok, F_RESOLVED].sum()),
        "fine_bars_read": int(fine_read[ok].sum()),
    }


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
    fine: pd.DataFrame | PreparedCandles | None = None,
) -> pd.DataFrame:
    """One trades row per entered call (columns of schemas.TRADES).

    `fine`: the 1m bars of the same calls (a DataFrame or `PreparedCandles` at 1m), for a run
    coarser than 1m: an ambiguous exit bar (a stop and an unfilled take-profit/ladder level
    both inside it) is replayed from the 1m bars inside it, and only those bars are read.
    Ignored at 1m. The result's `attrs["drilldown"]` says how many exit bars were ambiguous
    before the drill-down (`ambiguous_bars`), how many it resolved (`resolved_bars`) and how
    many 1m bars it read (`fine_bars_read`)."""
    parsed = parse_policy(policy)  # before any work
    check_alerts(alerts)
    check_run_params(horizon_ms, entry_delay_ms)
    check_costs(fee_bps, slippage_bps)
    prepared = as_prepared(candles, interval)
    series, alert_ts = call_arrays(alerts, prepared)
    drill = fine_for(fine, alerts, interval, prepared, series)
    status, e, x, reason, stop_out, vals, flags, fine_read = replay_kernel(
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
        drill,
    )
    complete = complete_flags(prepared, series, alert_ts, horizon_ms)
    trades = trades_frame(
        alerts,
        prepared.ts,
        status,
        e,
        x,
        reason,
        stop_out,
        vals,
        flags,
        complete,
        policy_id,
        run_id,
    )
    trades.attrs["drilldown"] = drilldown_stats(status, flags, fine_read)
    return trades
