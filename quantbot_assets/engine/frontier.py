"""Frontier: a grid of policies over a set of calls, overall and per caller, scored, ranked
and flagged Pareto-optimal (SEMANTICS "Frontier").

Every fixed_stop policy of the grid is answered in one pass per call: the first bar where each
distinct stop level is crossed (running low) and each take-profit level (running high) gives
every (stop, take profit) pair at once. Other kinds replay the general kernel per policy.
Both paths run the same arithmetic as `simulate_policy`, so results are equal exactly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numba import njit

from quantbot_assets import schemas
from quantbot_assets.engine.bootstrap import bootstrap_intervals, bootstrap_seed
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
    F_AMBIGUOUS,
    F_RESOLVED,
    F_WAS_AMBIGUOUS,
    N_FLAGS,
    N_VALS,
    R_END,
    R_STOP,
    R_TP,
    V_ENTRY,
    V_EXIT,
    V_MAE,
    V_OPT,
    V_REALIZED,
    V_TAIL,
    Fine,
    check_costs,
    drill_down,
    drilldown_stats,
    end_of_window_bar,
    fine_for,
    finish,
    level_above,
    level_below,
    min_low,
    replay_kernel,
    return_bps,
    window_peak,
)
from quantbot_assets.engine.threads import split_map
from quantbot_assets.engine.windows import proven, proven_hl, valid_price, window
from quantbot_assets.params import DEFAULT_HORIZON_MS

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
    fine=None,
):  # type: ignore[no-untyped-def]
    """sl_bps ascending (stop levels descending), tp_bps ascending; policy p uses stop
    pol_sl[p] and take profit pol_tp[p] (-1 = none). Returns per (policy, call) the exit bar,
    reason, stop_out, vals [entry_px, exit_px, realized, mae, tail, optimistic], flags
    [ambiguous, resolved, was ambiguous] and the 1m bars read by drill-downs."""
    n = len(series)
    npol = len(pol_sl)
    if fine is None:
        fine = Fine.none(n)
    status = np.zeros(n, np.int8)
    e_out = np.zeros(n, np.int64)
    x_out = np.zeros((npol, n), np.int64)
    reason = np.zeros((npol, n), np.int8)
    stop_out = np.zeros((npol, n), np.bool_)
    vals = np.full((npol, n, N_VALS), np.nan)
    flags = np.zeros((npol, n, N_FLAGS), np.bool_)
    fine_read = np.zeros((npol, n), np.int64)
    out = (status, e_out, x_out, reason, stop_out, vals, flags, fine_read)
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
        fine.ts,
        fine.open,
        fine.high,
        fine.low,
        fine.offsets,
        fine.series,
        fine.step,
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
    npol = len(pol_sl)
    ns = len(sl_bps)
    nt = len(tp_bps)
    keep = 1.0 - slip / 10000.0
    no_px = np.empty(0)
    no_done = np.zeros(0, np.bool_)
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
        fa = 0
        fb = 0
        if fseries[k] >= 0:
            fa = foffsets[fseries[k]]
            fb = foffsets[fseries[k] + 1]
        s_lvl = np.empty(ns)
        for a in range(ns):
            s_lvl[a] = level_below(p0, sl_bps[a])
        t_lvl = np.empty(nt)
        for b in range(nt):
            t_lvl[b] = level_above(p0, tp_bps[b])
        s_bar = np.full(ns, end, np.int64)
        s_fill = np.empty(ns)
        s_open = np.zeros(ns, np.bool_)  # the stop filled at the bar's open (a gap)
        s_mn = np.empty(ns)  # lowest low of the bars before the stop's bar
        t_bar = np.full(nt, end, np.int64)
        t_fill = np.empty(nt)
        t_open = np.zeros(nt, np.bool_)  # the take profit filled at the bar's open (a gap)
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
                s_open[si] = oj <= s_lvl[si]
                s_fill[si] = oj if s_open[si] else s_lvl[si]
                s_mn[si] = mn
                si += 1
                fired = True
            while ti < nt and (oj >= t_lvl[ti] or hj >= t_lvl[ti]):
                t_bar[ti] = j
                t_open[ti] = oj >= t_lvl[ti]
                if t_open[ti]:
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
            amb = False
            res = False
            was = False
            reads = 0
            # Same bar: a gap through the stop comes first, then a gap through the take profit
            # (3a), then the stop inside the bar; stop and take profit both inside the bar
            # with a proven open is the ambiguous case.
            stop_first = sb < end and (sb < tb or (sb == tb and (s_open[a] or not t_open[b])))
            if stop_first:
                x = sb
                r = R_STOP
                wsum = 1.0 * (s_fill[a] * keep)
                minp = min(np.inf, s_fill[a])
                so = True
                if sb == tb and not s_open[a] and proven(o[sb]) == proven(o[sb]):
                    amb = True
                    was = True
                    if step > 0 and fa < fb:
                        ok, d_wsum, _, d_r, d_so, d_minp, reads = drill_down(
                            fts,
                            fo,
                            fh,
                            flo,
                            fa,
                            fb,
                            ts[sb],
                            ts[sb] + step,
                            s_lvl[a],
                            R_STOP,
                            t_lvl[b],
                            no_px,
                            no_px,
                            no_done,
                            0,
                            0,
                            0.0,
                            0.0,
                            0.0,
                            keep,
                        )
                        if ok:
                            amb = False
                            res = True
                            wsum = d_wsum
                            r = d_r
                            so = d_so
                            minp = min(s_mn[a], d_minp)
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
            vals[p, k, V_ENTRY] = entry_px
            vals[p, k, V_EXIT] = exit_px
            vals[p, k, V_REALIZED] = realized
            vals[p, k, V_MAE] = mae
            vals[p, k, V_TAIL] = tail
            vals[p, k, V_OPT] = (
                return_bps(entry_px, (t_lvl[b] * keep) / 1.0, fee) if amb else realized
            )
            flags[p, k, F_AMBIGUOUS] = amb
            flags[p, k, F_RESOLVED] = res
            flags[p, k, F_WAS_AMBIGUOUS] = was
            fine_read[p, k] = reads


# ---- aggregation -----------------------------------------------------------------------------


def _block_stats(
    r: np.ndarray, so: np.ndarray, mae: np.ndarray, opt: np.ndarray, amb: np.ndarray, q: float
) -> np.ndarray:
    """Rows = policies, columns = the trades of one group, each row C-contiguous so that numpy
    reduces it exactly as it reduces the 1-D column of a trades frame (pairwise sums, the same
    percentile interpolation): frontier numbers equal `summarize`'s to the last bit.
    Returns per policy [count, mean, median, stop-out rate, mean MAE, percentile q, win rate,
    mean optimistic, median optimistic, ambiguous rate]."""
    npol, m = r.shape
    out = np.full((npol, 10), np.nan)
    out[:, 0] = m
    if m:
        means = np.mean(
            np.concatenate([r, so, mae, (r > 0.0).astype(np.float64), opt, amb]), axis=1
        )
        # one call for both return blocks (rows are reduced independently)
        pct = np.percentile(np.concatenate([r, opt]), [50.0, q], axis=1)
        out[:, 1] = means[:npol]
        out[:, 2] = pct[0, :npol]
        out[:, 3] = means[npol : 2 * npol]
        out[:, 4] = means[2 * npol : 3 * npol]
        out[:, 5] = pct[1, :npol]
        out[:, 6] = means[3 * npol : 4 * npol]
        out[:, 7] = means[4 * npol : 5 * npol]
        out[:, 8] = pct[0, npol:]
        out[:, 9] = means[5 * npol :]
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
    fine: Fine | None = None,
) -> tuple[np.ndarray, dict[str, tuple[np.ndarray, ...]]]:
    """(status per call, {policy_id: (e, x, reason, stop_out, vals, flags, fine_read)} over
    all calls); vals and flags columns as in `replay.replay_kernel`."""
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
        status, e, x, reason, stop_out, vals, flags, fine_read = fixed_grid_kernel(
            *arrays, *common, sl, tps, pol_sl, pol_tp, float(slippage_bps), float(fee_bps), fine
        )
        for p, pid in enumerate(fixed):
            results[pid] = (e, x[p], reason[p], stop_out[p], vals[p], flags[p], fine_read[p])
    for pid, pol in policies.items():
        if pid in fixed:
            continue
        status, e, x, reason, stop_out, vals, flags, fine_read = replay_kernel(
            *arrays, *common, encode_policy(pol), float(slippage_bps), float(fee_bps), fine
        )
        results[pid] = (e, x, reason, stop_out, vals, flags, fine_read)
    assert status is not None
    return status, {pid: results[pid] for pid in policies}


@dataclass(frozen=True)
class GridReplay:
    """Every grid policy replayed on every call once: per call and policy, what the frontier's
    scores aggregate. Rows of the (policy, call) arrays follow `policy_ids`; columns follow
    the alerts' order (NaN / 0 for calls that were not entered)."""

    policy_ids: list[str]
    policy_params: list[str]  # canonical JSON of each policy
    callers: np.ndarray  # caller_name per call (object)
    alert_ts_ms: np.ndarray  # per call (int64)
    entered: np.ndarray  # per call (bool)
    returns: np.ndarray  # realized_return_bps
    stop_out: np.ndarray  # 0.0 / 1.0
    mae: np.ndarray
    optimistic: np.ndarray
    ambiguous: np.ndarray  # 0.0 / 1.0
    drilldown: dict[str, int]
    run_params: str  # the run parameters as JSON: the default seed key of the intervals

    def blocks(
        self, calls: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The (policy, call) arrays restricted to `calls` (indices, in the order given)."""

        def pick(b: np.ndarray) -> np.ndarray:
            return np.ascontiguousarray(b[:, calls])

        return (
            pick(self.returns),
            pick(self.stop_out),
            pick(self.mae),
            pick(self.optimistic),
            pick(self.ambiguous),
        )


def check_scoring(objective: str, min_trades: int, max_stop_out_rate: float) -> None:
    """The frontier's objective and constraints, checked before any work."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective: {objective!r} is not one of {list(OBJECTIVES)}")
    if min_trades < 0 or not 0 <= max_stop_out_rate <= 1:
        raise ValueError(
            f"min_trades must be >= 0 and max_stop_out_rate in [0, 1], got {min_trades}, {max_stop_out_rate}"
        )


def objective_stats(objective: str) -> tuple[float, int]:
    """(percentile asked of `_block_stats`, column of `_block_stats` holding the objective)."""
    q = {"p25_return_bps": 25.0, "p75_return_bps": 75.0, "p90_return_bps": 90.0}.get(
        objective, 50.0
    )
    col = {"avg_return_bps": 1, "median_return_bps": 2, "win_rate": 6}.get(objective, 5)
    return q, col


def pooled_stats(blocks: tuple[np.ndarray, ...], objective: str) -> tuple[int, float, float]:
    """(trades, objective score, stop-out rate) of one set of trades: 1-D arrays of returns,
    stop-outs, MAE, optimistic returns and ambiguity, scored as a frontier row would be."""
    q, col = objective_stats(objective)
    r, so, mae, opt, amb = (np.ascontiguousarray(b, dtype=np.float64)[None, :] for b in blocks)
    row = _block_stats(r, so, mae, opt, amb, q)[0]
    return int(row[0]), float(row[col]), float(row[3])


def replay_grid(
    alerts: pd.DataFrame,
    candles: pd.DataFrame | PreparedCandles,
    grid: Mapping[str, str | dict[str, Any] | Policy] | None = None,
    *,
    interval: str = "1m",
    horizon_ms: int = DEFAULT_HORIZON_MS,
    entry_delay_ms: int = 0,
    fee_bps: float = 0.0,
    slippage_bps: float = 0.0,
    fine: pd.DataFrame | PreparedCandles | None = None,
) -> GridReplay:
    """Replay every policy of `grid` on every call of `alerts` (see `search_frontier`)."""
    policies = _check_grid(grid)
    check_alerts(alerts)
    if (alerts["caller_name"] == ALL_CALLERS).any():
        raise ValueError(
            f"alerts column 'caller_name': {ALL_CALLERS!r} is reserved for overall rows"
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
        fine=fine_for(fine, alerts, interval, prepared, series),
    )
    pids = list(results)
    return GridReplay(
        policy_ids=pids,
        policy_params=[policies[pid].canonical_json() for pid in pids],
        callers=alerts["caller_name"].to_numpy(dtype=object),
        alert_ts_ms=alerts["alert_ts_ms"].to_numpy(dtype=np.int64),
        entered=status == ENTERED,
        returns=np.stack([results[pid][4][:, V_REALIZED] for pid in pids]),
        stop_out=np.stack([results[pid][3] for pid in pids]).astype(np.float64),
        mae=np.stack([results[pid][4][:, V_MAE] for pid in pids]),
        optimistic=np.stack([results[pid][4][:, V_OPT] for pid in pids]),
        ambiguous=np.stack([results[pid][5][:, F_AMBIGUOUS] for pid in pids]).astype(np.float64),
        drilldown={
            key: sum(drilldown_stats(status, res[5], res[6])[key] for res in results.values())
            for key in ("ambiguous_bars", "resolved_bars", "fine_bars_read")
        },
        run_params=json.dumps(
            [interval, int(horizon_ms), int(entry_delay_ms), float(fee_bps), float(slippage_bps)]
        ),
    )


def score_grid(
    replay: GridReplay,
    *,
    objective: str = "median_return_bps",
    min_trades: int = 20,
    max_stop_out_rate: float = 0.8,
    run_id: str = "",
    calls: np.ndarray | None = None,
    seed_key: str | None = None,
) -> pd.DataFrame:
    """Frontier rows (columns of schemas.FRONTIER) of the calls selected by the boolean mask
    `calls` (all when None): per policy, overall and per caller of the selected calls. The
    bootstrap intervals of a caller's rows share one draw seeded by `bootstrap_seed(
    "frontier", seed_key, caller_name)`; `seed_key` defaults to the run parameters as JSON."""
    check_scoring(objective, min_trades, max_stop_out_rate)
    chosen = np.ones(len(replay.entered), bool) if calls is None else np.asarray(calls, bool)
    entered = np.flatnonzero(chosen & replay.entered)
    # every caller of the selected calls gets rows, also one whose calls were all excluded
    _, names = pd.factorize(replay.callers[chosen], sort=True)
    codes = np.searchsorted(np.asarray(names, dtype=object), replay.callers[entered])
    order = np.argsort(codes, kind="stable")  # keeps alert order inside a caller
    counts = np.bincount(codes, minlength=len(names))
    group_off = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    q, col_of = objective_stats(objective)
    blocks = replay.blocks(entered)
    r_b, so_b, mae_b, opt_b, amb_b = blocks
    key = replay.run_params if seed_key is None else seed_key
    stats = [_block_stats(r_b, so_b, mae_b, opt_b, amb_b, q)]  # overall, in alert order
    intervals = [bootstrap_intervals(r_b, bootstrap_seed("frontier", key, ALL_CALLERS))]
    sorted_blocks = [b[:, order] for b in blocks]
    for g in range(len(names)):
        cols = slice(int(group_off[g]), int(group_off[g + 1]))
        r_g, so_g, mae_g, opt_g, amb_g = (np.ascontiguousarray(b[:, cols]) for b in sorted_blocks)
        stats.append(_block_stats(r_g, so_g, mae_g, opt_g, amb_g, q))
        intervals.append(bootstrap_intervals(r_g, bootstrap_seed("frontier", key, str(names[g]))))
    table = np.concatenate(stats)  # group-major: all policies of __all__, then of caller 0, ...
    ci = np.concatenate(intervals)
    group_names = np.array([ALL_CALLERS, *[str(x) for x in names]], dtype=object)
    pids = replay.policy_ids
    npol = len(pids)
    out = pd.DataFrame(
        {
            "run_id": np.full(len(table), run_id, dtype=object),
            "caller_name": np.repeat(group_names, npol),
            "policy_id": np.tile(np.array(pids, dtype=object), len(group_names)),
            "policy_params": np.tile(
                np.array(replay.policy_params, dtype=object), len(group_names)
            ),
            "trades_count": table[:, 0].astype(np.int64),
            "avg_return_bps": table[:, 1],
            "median_return_bps": table[:, 2],
            "stop_out_rate": table[:, 3],
            "avg_max_adverse_excursion_bps": table[:, 4],
            "objective_score": table[:, col_of],
            "avg_optimistic_return_bps": table[:, 7],
            "median_optimistic_return_bps": table[:, 8],
            "ambiguous_trade_rate": table[:, 9],
            **{name: ci[:, i] for i, name in enumerate(schemas.INTERVAL_COLUMNS)},
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
    fine: pd.DataFrame | PreparedCandles | None = None,
    seed_key: str | None = None,
) -> pd.DataFrame:
    """Rows (columns of schemas.FRONTIER) per policy, overall (caller_name="__all__") and per
    caller; objective_score, meets_constraints, pareto and rank per caller. Scores and ranks
    use the pessimistic returns; avg/median_optimistic_return_bps and ambiguous_trade_rate
    show the range. `fine`: 1m bars for the drill-down of a coarser run, as in
    `simulate_policy`; `attrs["drilldown"]` sums its counts over the grid. The bootstrap
    intervals of a caller's rows share one draw seeded by `bootstrap_seed("frontier",
    seed_key, caller_name)`; `seed_key` defaults to the run parameters as JSON."""
    _check_grid(grid)
    check_scoring(objective, min_trades, max_stop_out_rate)
    replay = replay_grid(
        alerts,
        candles,
        grid,
        interval=interval,
        horizon_ms=horizon_ms,
        entry_delay_ms=entry_delay_ms,
        fee_bps=fee_bps,
        slippage_bps=slippage_bps,
        fine=fine,
    )
    frontier = score_grid(
        replay,
        objective=objective,
        min_trades=min_trades,
        max_stop_out_rate=max_stop_out_rate,
        run_id=run_id,
        seed_key=seed_key,
    )
    frontier.attrs["drilldown"] = replay.drilldown
    return frontier
