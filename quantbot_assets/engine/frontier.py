"""Frontier: a grid of policies over a set of calls, overall and per caller, scored, ranked
and flagged Pareto-optimal (SEMANTICS "Frontier").

Every fixed_stop policy of the grid is answered in one pass per call: the first bar where each
distinct stop level is crossed (running low) and each take-profit level (running high) gives
every (stop, take profit) pair at once. Other kinds replay the general kernel per policy.
Both paths run the same arithmetic as `simulate_policy`, so results are equal exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from numba import njit

from quantbot_assets import schemas
from quantbot_assets.engine.calls import (
    ENTERED,
    as_prepared,
    call_arrays,
    check_alerts,
    check_run_params,
)
from quantbot_assets.engine.candles import PreparedCandles
from quantbot_assets.engine.policy import (
    Combo,
    FixedStop,
    Ladder,
    LadderLevel,
    Policy,
    TimeStop,
    TrailingStop,
    encode_policy,
    parse_policy,
)
from quantbot_assets.engine.replay import (
    R_END,
    R_STOP,
    R_TP,
    check_costs,
    end_of_window_bar,
    finish,
    level_above,
    level_below,
    min_low,
    replay_kernel,
    window_peak,
)
from quantbot_assets.engine.threads import split_map
from quantbot_assets.engine.truth import DEFAULT_HORIZON_MS
from quantbot_assets.engine.windows import proven, proven_hl, valid_price, window

FRONTIER_COLUMNS = schemas.FRONTIER.names
ALL_CALLERS = "__all__"
OBJECTIVES = (
    "median_return_bps",
    "avg_return_bps",
    "p25_return_bps",
    "p75_return_bps",
    "p90_return_bps",
    "win_rate",
)


# ---- default grid ----------------------------------------------------------------------------


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def policy_id_for(policy: Policy) -> str:
    """A readable, stable id, e.g. fixed_stop-sl500-tp1000."""
    if isinstance(policy, FixedStop):
        tp = "" if policy.take_profit_bps is None else f"-tp{_num(policy.take_profit_bps)}"
        return f"fixed_stop-sl{_num(policy.stop_loss_bps)}{tp}"
    if isinstance(policy, TimeStop):
        tp = "" if policy.take_profit_bps is None else f"-tp{_num(policy.take_profit_bps)}"
        return f"time_stop-hold{_num(policy.max_hold_ms / 60_000)}m{tp}"
    if isinstance(policy, TrailingStop):
        hs = "" if policy.hard_stop_bps is None else f"-hs{_num(policy.hard_stop_bps)}"
        return f"trailing_stop-act{_num(policy.activation_bps)}-tr{_num(policy.trail_bps)}{hs}"
    if isinstance(policy, Ladder):
        lv = "-".join(
            f"{_num(x.multiple)}x{_num(round(x.fraction * 100, 6))}" for x in policy.levels
        )
        sl = "" if policy.stop_loss_bps is None else f"-sl{_num(policy.stop_loss_bps)}"
        return f"ladder-{lv}{sl}"
    if isinstance(policy, Combo):
        return "combo-" + "+".join(policy_id_for(p) for p in policy.policies)
    raise TypeError(type(policy))


def default_grid() -> dict[str, Policy]:
    """fixed_stop stop x take profit, trailing activation x trail x hard stop, time-stop holds
    and a few ladders."""
    policies: list[Policy] = []
    for sl in (300, 500, 1000, 2000, 3000):
        for tp in (None, 5000, 10000, 20000, 40000):
            policies.append(FixedStop(stop_loss_bps=sl, take_profit_bps=tp))
    for act in (2000, 5000, 10000):
        for trail in (1000, 2000, 3000):
            for hs in (3000, 5000):
                policies.append(TrailingStop(activation_bps=act, trail_bps=trail, hard_stop_bps=hs))
    for minutes in (60, 240, 720, 1440):
        policies.append(TimeStop(max_hold_ms=minutes * 60_000))
    ladders: list[tuple[list[tuple[float, float]], float]] = [
        ([(2, 0.5), (3, 0.5)], 5000),
        ([(1.5, 0.5), (3, 0.5)], 3000),
        ([(2, 0.33), (4, 0.33), (8, 0.34)], 5000),
        ([(2, 0.5)], 5000),
    ]
    for levels, ladder_sl in ladders:
        policies.append(
            Ladder(
                levels=[LadderLevel(multiple=m, fraction=f) for m, f in levels],
                stop_loss_bps=ladder_sl,
            )
        )
    return {policy_id_for(p): p for p in policies}


# ---- fixed_stop grid in one pass per call ----------------------------------------------------


def fixed_grid_kernel(
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
    sl_bps,
    tp_bps,
    pol_sl,
    pol_tp,
    slip,
    fee,
):  # type: ignore[no-untyped-def]
    """sl_bps ascending (stop levels descending), tp_bps ascending; policy p uses stop
    pol_sl[p] and take profit pol_tp[p] (-1 = none). Returns per (policy, call) the exit bar,
    reason, stop_out and [entry_px, exit_px, realized, mae, tail]."""
    n = len(series)
    npol = len(pol_sl)
    status = np.zeros(n, np.int8)
    e_out = np.zeros(n, np.int64)
    x_out = np.zeros((npol, n), np.int64)
    reason = np.zeros((npol, n), np.int8)
    stop_out = np.zeros((npol, n), np.bool_)
    vals = np.full((npol, n, 5), np.nan)
    out = (status, e_out, x_out, reason, stop_out, vals)
    args = (
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
        sl_bps,
        tp_bps,
        pol_sl,
        pol_tp,
        slip,
        fee,
    )
    split_map(lambda a, b: _fixed_grid_range(*args, a, b, *out), n, 16)
    return out


@njit(cache=True, nogil=True)
def _fixed_grid_range(
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
    sl_bps,
    tp_bps,
    pol_sl,
    pol_tp,
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
    npol = len(pol_sl)
    ns = len(sl_bps)
    nt = len(tp_bps)
    keep = 1.0 - slip / 10000.0
    for k in range(a0, b0):
        e, end = window(ts, offsets, series[k], alert_ts[k], entry_delay_ms, horizon_ms)
        e_out[k] = e
        if e >= end:
            status[k] = 1
            continue
        p0 = o[e]
        if not valid_price(p0):
            status[k] = 2
            continue
        s_lvl = np.empty(ns)
        for a in range(ns):
            s_lvl[a] = level_below(p0, sl_bps[a])
        t_lvl = np.empty(nt)
        for b in range(nt):
            t_lvl[b] = level_above(p0, tp_bps[b])
        s_bar = np.full(ns, end, np.int64)
        s_fill = np.empty(ns)
        t_bar = np.full(nt, end, np.int64)
        t_fill = np.empty(nt)
        t_minp = np.empty(nt)
        si = 0
        ti = 0
        mn = np.inf  # lowest low of bars e .. j-1
        peak = -np.inf
        j = e
        # Stop reading lows and opens once every policy's exit is known (its stop or its take
        # profit fired); only the window's peak (for tail_capture) is left to read then.
        s_cur = s_lvl[0] if ns > 0 else -np.inf
        t_cur = t_lvl[0] if nt > 0 else np.inf
        undecided = npol
        while j < end and undecided > 0:
            oj = o[j]
            hj = h[j]
            lj = lo[j]
            # raw fields say whether this bar can fire a level or move the trough or peak;
            # only then are they checked (`proven`) and the tests rerun on proven values
            if not (
                oj <= s_cur or lj <= s_cur or oj >= t_cur or hj >= t_cur or lj < mn or hj > peak
            ):
                j += 1
                continue
            oj = proven(oj)
            hj, lj = proven_hl(hj, lj)
            fired = False
            while si < ns and (oj <= s_lvl[si] or lj <= s_lvl[si]):
                s_bar[si] = j
                s_fill[si] = oj if oj <= s_lvl[si] else s_lvl[si]
                si += 1
                fired = True
            while ti < nt and (oj >= t_lvl[ti] or hj >= t_lvl[ti]):
                t_bar[ti] = j
                if oj >= t_lvl[ti]:
                    t_fill[ti] = oj
                    t_minp[ti] = min(mn, oj)
                else:
                    t_fill[ti] = t_lvl[ti]
                    t_minp[ti] = lj if lj < mn else mn
                ti += 1
                fired = True
            if fired:
                s_cur = s_lvl[si] if si < ns else -np.inf
                t_cur = t_lvl[ti] if ti < nt else np.inf
                undecided = 0
                for p in range(npol):
                    if not (pol_sl[p] < si or (pol_tp[p] >= 0 and pol_tp[p] < ti)):
                        undecided += 1
            if lj < mn:
                mn = lj
            if hj > peak:
                peak = hj
            j += 1
        if j < end:
            peak = max(peak, window_peak(h, lo, j, end))
        xe = -1
        for p in range(npol):
            a = pol_sl[p]
            b = pol_tp[p]
            sb = s_bar[a] if a >= 0 else end
            tb = t_bar[b] if b >= 0 else end
            if sb < end and sb <= tb:
                x = sb
                r = R_STOP
                wsum = 1.0 * (s_fill[a] * keep)
                minp = min(np.inf, s_fill[a])
                so = True
            elif tb < end:
                x = tb
                r = R_TP
                wsum = t_fill[b] * keep
                minp = t_minp[b]
                so = False
            else:
                if xe < 0:
                    xe = end_of_window_bar(c, e, end)
                    if xe >= 0:
                        px_end = c[xe]
                    else:
                        xe = end_of_window_bar(o, e, end)
                        px_end = o[xe]
                    minp_end = mn if xe == end - 1 else min_low(h, lo, e, xe + 1)
                x = xe
                r = R_END
                wsum = 1.0 * (px_end * keep)
                minp = minp_end
                so = False
            entry_px, exit_px, realized, mae, tail = finish(p0, peak, wsum, 1.0, minp, slip, fee)
            x_out[p, k] = x
            reason[p, k] = r
            stop_out[p, k] = so
            vals[p, k, 0] = entry_px
            vals[p, k, 1] = exit_px
            vals[p, k, 2] = realized
            vals[p, k, 3] = mae
            vals[p, k, 4] = tail


# ---- aggregation -----------------------------------------------------------------------------


def _block_stats(r: np.ndarray, so: np.ndarray, mae: np.ndarray, q: float) -> np.ndarray:
    """Rows = policies, columns = the trades of one group, each row C-contiguous so that numpy
    reduces it exactly as it reduces the 1-D column of a trades frame (pairwise sums, the same
    percentile interpolation): frontier numbers equal `summarize`'s to the last bit.
    Returns per policy [count, mean, median, stop-out rate, mean MAE, percentile q, win rate]."""
    npol, m = r.shape
    out = np.full((npol, 7), np.nan)
    out[:, 0] = m
    if m:
        means = np.mean(np.concatenate([r, so, mae, (r > 0.0).astype(np.float64)]), axis=1)
        pct = np.percentile(r, [50.0, q], axis=1)
        out[:, 1] = means[:npol]
        out[:, 2] = pct[0]
        out[:, 3] = means[npol : 2 * npol]
        out[:, 4] = means[2 * npol : 3 * npol]
        out[:, 5] = pct[1]
        out[:, 6] = means[3 * npol :]
    return out


def _pareto(score: np.ndarray, stop: np.ndarray, eligible: np.ndarray) -> np.ndarray:
    """Eligible rows not dominated by another eligible row (score >= and stop-out rate <=,
    one of them strictly)."""
    s_j, s_i = score[None, :], score[:, None]
    t_j, t_i = stop[None, :], stop[:, None]
    dominates = eligible[None, :] & (s_j >= s_i) & (t_j <= t_i) & ((s_j > s_i) | (t_j < t_i))
    return eligible & ~dominates.any(axis=1)


def _check_grid(grid: Mapping[str, Any] | None) -> dict[str, Policy]:
    if grid is None:
        return default_grid()
    if not grid:
        raise ValueError("grid: no policies")
    parsed: dict[str, Policy] = {}
    for pid, pol in grid.items():
        if not isinstance(pid, str) or not pid:
            raise ValueError(f"grid: policy ids must be non-empty strings, got {pid!r}")
        try:
            parsed[pid] = parse_policy(pol)
        except ValueError as exc:
            raise ValueError(f"grid[{pid!r}]: {exc}") from None
    return parsed


def evaluate_grid(
    policies: dict[str, Policy],
    prepared: PreparedCandles,
    series: np.ndarray,
    alert_ts: np.ndarray,
    *,
    entry_delay_ms: int,
    horizon_ms: int,
    fee_bps: float,
    slippage_bps: float,
) -> tuple[
    np.ndarray, dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
]:
    """(status per call, {policy_id: (e, x, reason, stop_out, vals)} over all calls)."""
    arrays = (
        prepared.ts,
        prepared.open,
        prepared.high,
        prepared.low,
        prepared.close,
        prepared.offsets,
    )
    common = (series, alert_ts, np.int64(entry_delay_ms), np.int64(horizon_ms))
    results: dict[str, Any] = {}
    status: np.ndarray | None = None
    fixed = {pid: p for pid, p in policies.items() if isinstance(p, FixedStop)}
    if fixed:
        sl = np.array(sorted({p.stop_loss_bps for p in fixed.values()}), dtype=np.float64)
        tps = np.array(
            sorted({p.take_profit_bps for p in fixed.values() if p.take_profit_bps is not None}),
            dtype=np.float64,
        )
        pol_sl = np.array(
            [int(np.searchsorted(sl, p.stop_loss_bps)) for p in fixed.values()], dtype=np.int64
        )
        pol_tp = np.array(
            [
                -1 if p.take_profit_bps is None else int(np.searchsorted(tps, p.take_profit_bps))
                for p in fixed.values()
            ],
            dtype=np.int64,
        )
        status, e, x, reason, stop_out, vals = fixed_grid_kernel(
            *arrays, *common, sl, tps, pol_sl, pol_tp, float(slippage_bps), float(fee_bps)
        )
        for p, pid in enumerate(fixed):
            results[pid] = (e, x[p], reason[p], stop_out[p], vals[p])
    for pid, pol in policies.items():
        if pid in fixed:
            continue
        status, e, x, reason, stop_out, vals = replay_kernel(
            *arrays, *common, encode_policy(pol), float(slippage_bps), float(fee_bps)
        )
        results[pid] = (e, x, reason, stop_out, vals)
    assert status is not None
    return status, {pid: results[pid] for pid in policies}


def search_frontier(
    alerts: pd.DataFrame,
    candles: pd.DataFrame | PreparedCandles,
    grid: Mapping[str, str | dict[str, Any] | Policy] | None = None,
    *,
    objective: str = "median_return_bps",
    min_trades: int = 20,
    max_stop_out_rate: float = 0.8,
    interval: str = "1m",
    horizon_ms: int = DEFAULT_HORIZON_MS,
    entry_delay_ms: int = 0,
    fee_bps: float = 0.0,
    slippage_bps: float = 0.0,
    run_id: str = "",
) -> pd.DataFrame:
    """Rows (columns of schemas.FRONTIER) per policy, overall (caller_name="__all__") and per
    caller; objective_score, meets_constraints, pareto and rank per caller."""
    policies = _check_grid(grid)
    if objective not in OBJECTIVES:
        raise ValueError(f"objective: {objective!r} is not one of {list(OBJECTIVES)}")
    check_alerts(alerts)
    if (alerts["caller_name"] == ALL_CALLERS).any():
        raise ValueError(
            f"alerts column 'caller_name': {ALL_CALLERS!r} is reserved for overall rows"
        )
    if min_trades < 0 or not 0 <= max_stop_out_rate <= 1:
        raise ValueError(
            f"min_trades must be >= 0 and max_stop_out_rate in [0, 1], got {min_trades}, {max_stop_out_rate}"
        )
    check_run_params(horizon_ms, entry_delay_ms)
    check_costs(fee_bps, slippage_bps)
    prepared = as_prepared(candles, interval)
    series, alert_ts = call_arrays(alerts, prepared)
    status, results = evaluate_grid(
        policies,
        prepared,
        series,
        alert_ts,
        entry_delay_ms=entry_delay_ms,
        horizon_ms=horizon_ms,
        fee_bps=fee_bps,
        slippage_bps=slippage_bps,
    )
    entered = np.flatnonzero(status == ENTERED)
    # every caller of the input gets rows, also one whose calls were all excluded
    codes_all, names = pd.factorize(alerts["caller_name"].to_numpy(dtype=object), sort=True)
    codes = codes_all[entered]
    order = np.argsort(codes, kind="stable")  # keeps alert order inside a caller
    counts = np.bincount(codes, minlength=len(names))
    group_off = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    q = {"p25_return_bps": 25.0, "p75_return_bps": 75.0, "p90_return_bps": 90.0}.get(
        objective, 50.0
    )
    col_of = {"avg_return_bps": 1, "median_return_bps": 2, "win_rate": 6}.get(objective, 5)
    pids = list(results)
    r_all = np.stack([results[pid][4][entered, 2] for pid in pids])
    so_all = np.stack([results[pid][3][entered] for pid in pids]).astype(np.float64)
    mae_all = np.stack([results[pid][4][entered, 3] for pid in pids])
    stats = [_block_stats(r_all, so_all, mae_all, q)]  # overall, in alert order
    r_s, so_s, mae_s = r_all[:, order], so_all[:, order], mae_all[:, order]
    for g in range(len(names)):
        cols = slice(int(group_off[g]), int(group_off[g + 1]))
        stats.append(
            _block_stats(
                np.ascontiguousarray(r_s[:, cols]),
                np.ascontiguousarray(so_s[:, cols]),
                np.ascontiguousarray(mae_s[:, cols]),
                q,
            )
        )
    table = np.concatenate(stats)  # group-major: all policies of __all__, then of caller 0, ...
    group_names = np.array([ALL_CALLERS, *[str(x) for x in names]], dtype=object)
    npol = len(pids)
    params = {pid: policies[pid].canonical_json() for pid in pids}
    out = pd.DataFrame(
        {
            "run_id": np.full(len(table), run_id, dtype=object),
            "caller_name": np.repeat(group_names, npol),
            "policy_id": np.tile(np.array(pids, dtype=object), len(group_names)),
            "policy_params": np.tile(
                np.array([params[p] for p in pids], dtype=object), len(group_names)
            ),
            "trades_count": table[:, 0].astype(np.int64),
            "avg_return_bps": table[:, 1],
            "median_return_bps": table[:, 2],
            "stop_out_rate": table[:, 3],
            "avg_max_adverse_excursion_bps": table[:, 4],
            "objective_score": table[:, col_of],
        }
    )
    out["meets_constraints"] = (
        (out["trades_count"] >= min_trades)
        & (out["stop_out_rate"] <= max_stop_out_rate)
        & out["objective_score"].notna()
    ).to_numpy(dtype=bool)
    ok_all = out["meets_constraints"].to_numpy(dtype=bool)
    score_all = out["objective_score"].to_numpy(dtype=np.float64)
    stop_all = out["stop_out_rate"].to_numpy(dtype=np.float64)
    pareto = np.zeros(len(out), dtype=bool)
    rank = np.zeros(len(out), dtype=np.int64)
    for g in range(len(group_names)):  # rows are group-major: npol rows per caller
        rows = slice(g * npol, (g + 1) * npol)
        ok = ok_all[rows]
        score = score_all[rows]
        pareto[rows] = _pareto(score, stop_all[rows], ok)
        # rank = 1 + number of eligible rows with a strictly higher score (ties share a rank)
        better = ok[None, :] & (score[None, :] > score[:, None])
        rank[rows] = 1 + better.sum(axis=1)
    out["pareto"] = pareto
    out["rank"] = pd.array(np.where(ok_all, rank, 0), dtype="Int64")
    out.loc[~ok_all, "rank"] = pd.NA
    return out[FRONTIER_COLUMNS].reset_index(drop=True)
