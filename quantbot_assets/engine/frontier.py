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
        while j < end and (si < ns or ti < nt):
            oj = proven(o[j])
            hj, lj = proven_hl(h[j], lo[j])
            while si < ns and (oj <= s_lvl[si] or lj <= s_lvl[si]):
                s_bar[si] = j
                s_fill[si] = oj if oj <= s_lvl[si] else s_lvl[si]
                si += 1
            while ti < nt and (oj >= t_lvl[ti] or hj >= t_lvl[ti]):
                t_bar[ti] = j
                if oj >= t_lvl[ti]:
                    t_fill[ti] = oj
                    t_minp[ti] = min(mn, oj)
                else:
                    t_fill[ti] = t_lvl[ti]
                    t_minp[ti] = lj if lj < mn else mn
                ti += 1
            if lj < mn:
                mn = lj
            if hj > peak:
                peak = hj
            j += 1
        while j < end:
            hj, lj = proven_hl(h[j], lo[j])
            if lj < mn:
                mn = lj
            if hj > peak:
                peak = hj
            j += 1
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


def _group_stats(
    r: np.ndarray, so: np.ndarray, mae: np.ndarray, group_off: np.ndarray, q: float
) -> np.ndarray:
    """Per group (rows group_off[g]:group_off[g+1]): count, mean, median, stop-out rate,
    mean MAE, percentile q of returns and win rate. numpy's own mean/percentile, so the
    numbers are those `summarize` gives for the same trades, to the last bit."""
    ng = len(group_off) - 1
    out = np.full((ng, 7), np.nan)
    for g in range(ng):
        a, b = int(group_off[g]), int(group_off[g + 1])
        out[g, 0] = b - a
        if b > a:
            rr = r[a:b]
            out[g, 1] = np.mean(rr)
            out[g, 2] = np.percentile(rr, 50.0)
            out[g, 3] = np.mean(so[a:b])
            out[g, 4] = np.mean(mae[a:b])
            out[g, 5] = np.percentile(rr, q)
            out[g, 6] = np.mean(rr > 0.0)
    return out


def _pareto(score: np.ndarray, stop: np.ndarray, eligible: np.ndarray) -> np.ndarray:
    out = np.zeros(len(score), dtype=bool)
    idx = np.flatnonzero(eligible)
    for i in idx:
        s, t = score[i], stop[i]
        dominated = (
            (score[idx] >= s) & (stop[idx] <= t) & ((score[idx] > s) | (stop[idx] < t))
        ).any()
        out[i] = not dominated
    return out


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
    callers = alerts["caller_name"].to_numpy(dtype=object)[entered]
    codes, names = pd.factorize(callers, sort=True)
    order = np.argsort(codes, kind="stable")
    counts = (
        np.bincount(codes, minlength=len(names)) if len(codes) else np.zeros(len(names), np.int64)
    )
    group_off = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    all_off = np.array([0, len(entered)], dtype=np.int64)
    q = {"p25_return_bps": 25.0, "p75_return_bps": 75.0, "p90_return_bps": 90.0}.get(
        objective, 50.0
    )
    col_of = {"avg_return_bps": 1, "median_return_bps": 2, "win_rate": 6}.get(objective, 5)
    group_names = [ALL_CALLERS, *[str(x) for x in names]]
    blocks = []
    for pid, (_e, _x, _reason, stop_out, vals) in results.items():
        r = vals[entered, 2]
        so = stop_out[entered].astype(np.float64)
        mae = vals[entered, 3]
        overall = _group_stats(r, so, mae, all_off, q)
        per = _group_stats(r[order], so[order], mae[order], group_off, q)
        stats = np.vstack([overall, per])
        blocks.append(
            pd.DataFrame(
                {
                    "run_id": run_id,
                    "caller_name": group_names,
                    "policy_id": pid,
                    "policy_params": policies[pid].canonical_json(),
                    "trades_count": stats[:, 0].astype(np.int64),
                    "avg_return_bps": stats[:, 1],
                    "median_return_bps": stats[:, 2],
                    "stop_out_rate": stats[:, 3],
                    "avg_max_adverse_excursion_bps": stats[:, 4],
                    "objective_score": stats[:, col_of],
                }
            )
        )
    out = pd.concat(blocks, ignore_index=True)
    out["meets_constraints"] = (
        (out["trades_count"] >= min_trades)
        & (out["stop_out_rate"] <= max_stop_out_rate)
        & out["objective_score"].notna()
    ).to_numpy(dtype=bool)
    caller = out["caller_name"].to_numpy(dtype=object)
    ok_all = out["meets_constraints"].to_numpy(dtype=bool)
    score_all = out["objective_score"].to_numpy(dtype=np.float64)
    stop_all = out["stop_out_rate"].to_numpy(dtype=np.float64)
    pareto = np.zeros(len(out), dtype=bool)
    rank = np.zeros(len(out), dtype=np.int64)
    for idx in pd.Series(caller).groupby(caller, sort=False).indices.values():
        ok = ok_all[idx]
        pareto[idx] = _pareto(score_all[idx], stop_all[idx], ok)
        if ok.any():
            rank[idx] = (
                pd.Series(np.where(ok, -score_all[idx], np.nan))
                .rank(method="min")
                .fillna(0)
                .to_numpy(dtype=np.int64)
            )
    out["pareto"] = pareto
    out["rank"] = pd.array(rank, dtype="Int64")
    out.loc[~ok_all, "rank"] = pd.NA
    # overall rows first, then callers by name; policies in grid order
    caller_key = np.where(caller == ALL_CALLERS, "", caller.astype(str))
    policy_pos = {pid: i for i, pid in enumerate(results)}
    policy_key = out["policy_id"].map(policy_pos).to_numpy(dtype=np.int64)
    out = out.iloc[np.lexsort((policy_key, caller_key))]
    return out[FRONTIER_COLUMNS].reset_index(drop=True)
