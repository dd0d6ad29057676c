"""Lookahead probe: does any result depend on candles it may not read?

For a seeded sample of calls the probe reruns the truth layer (and, given a policy, the policy
layer) on candles where every bar after the part a call may read is (a) removed and (b)
replaced by random prices, and reports every cell that changed. A clean engine gives an empty
frame. Pure: no I/O, no orchestrator; an asset check can block on a non-empty result.

What a call may read:

- paths: the bars of its window W (ts < alert + horizon). `window_complete` asks whether the
  data goes on past the horizon, so it depends on those bars by definition and is left out
  of the comparison.
- trades: the bars up to and including the trade's exit bar (for a coarse run, the 1m bars of
  the drill-down up to the end of that coarse bar). `tail_capture` divides by the peak of the
  whole window (SEMANTICS), so it may read bars after the exit; it and `window_complete` are
  left out. A call without a trade (excluded) may read its window, as for paths.

Each sampled call gets its own copy of its series (a private mint name), so cutting one call's
bars never touches another call on the same mint.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from quantbot_assets.engine.calls import as_prepared, call_arrays, check_alerts
from quantbot_assets.engine.candles import PreparedCandles, interval_ms
from quantbot_assets.engine.policy import Policy, parse_policy
from quantbot_assets.engine.replay import simulate_policy
from quantbot_assets.engine.truth import compute_paths
from quantbot_assets.engine.windows import window_complete_probe_ms
from quantbot_assets.params import DEFAULT_HORIZON_MS

PROBE_COLUMNS = ["layer", "variant", "call_id", "column", "baseline", "probe"]
DEFAULT_SAMPLE_SIZE = 200
VARIANTS = ("removed", "randomized")
# Columns that may depend on bars past the readable part, by definition (see module doc).
PATHS_EXEMPT = frozenset({"window_complete"})
TRADES_EXEMPT = frozenset({"window_complete", "tail_capture"})
ROW = "<row>"  # `column` of a finding where the call has a row on one side only

PathsFn = Callable[..., tuple[pd.DataFrame, pd.DataFrame]]
TradesFn = Callable[..., pd.DataFrame]


def lookahead_probe(
    alerts: pd.DataFrame,
    candles: pd.DataFrame | PreparedCandles,
    policy: str | dict[str, Any] | Policy | None = None,
    *,
    policy_id: str = "probe",
    interval: str = "1m",
    horizon_ms: int = DEFAULT_HORIZON_MS,
    entry_delay_ms: int = 0,
    activity_move_bps: float = 1000,
    fee_bps: float = 0.0,
    slippage_bps: float = 0.0,
    fine: pd.DataFrame | PreparedCandles | None = None,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    seed: int = 0,
    paths_fn: PathsFn = compute_paths,
    trades_fn: TradesFn = simulate_policy,
    check_paths: bool = True,
) -> pd.DataFrame:
    """Cells that change when bars a call may not read are removed or randomized.

    Runs `paths_fn` (default `compute_paths`) and, when `policy` is given, `trades_fn`
    (default `simulate_policy`, with `fine` for the drill-down of a coarse run) on
    `sample_size` calls drawn with `seed` (all calls when there are fewer), with the same run
    parameters as the run being checked. Returns one row per changed cell, columns
    PROBE_COLUMNS: layer ("paths" | "trades"), variant ("removed" | "randomized"), call_id,
    column (ROW when the call has a row on one side only), baseline and probe (the two
    values as text). Empty when nothing leaks. The *_fn parameters exist so that the probe
    itself can be tested on a deliberately leaky function; they take the engine's
    signatures. `check_paths=False` probes the policy layer only (its truth layer was
    probed on its own)."""
    check_alerts(alerts)
    if sample_size < 1:
        raise ValueError(f"sample_size must be >= 1, got {sample_size}")
    parsed = parse_policy(policy) if policy is not None else None
    prepared = as_prepared(candles, interval)
    step = interval_ms(interval)
    minute = as_prepared(fine, "1m") if fine is not None and interval != "1m" else None
    rng = np.random.default_rng(seed)
    n = len(alerts)
    pick = (
        np.sort(rng.choice(n, size=min(n, sample_size), replace=False)) if n else np.zeros(0, int)
    )
    sub = alerts.iloc[pick].reset_index(drop=True)
    series, alert_ts = call_arrays(sub, prepared)
    window_end = alert_ts + np.int64(horizon_ms)
    # Each call's private series holds only the bars it could ever read, and those the
    # window_complete probe looks at: earlier and later bars change no cell of this call.
    first = alert_ts + np.int64(entry_delay_ms)
    last = window_end + np.int64(window_complete_probe_ms(step))
    found: list[pd.DataFrame] = []

    run = {"interval": interval, "horizon_ms": horizon_ms, "entry_delay_ms": entry_delay_ms}
    paths_kw = {**run, "activity_move_bps": activity_move_bps, "run_id": "probe"}
    if check_paths:
        base_paths, base_excl = paths_fn(sub, prepared, **paths_kw)
    for variant in VARIANTS if check_paths else ():
        probe_alerts, probe_candles = _isolated(
            sub, prepared, series, window_end, variant, rng, first, last
        )
        paths, excl = paths_fn(probe_alerts, probe_candles, **paths_kw)
        found.append(_diff("paths", variant, base_paths, paths, PATHS_EXEMPT))
        found.append(_diff("paths", variant, base_excl, excl, frozenset()))

    if parsed is not None:
        trades_kw: dict[str, Any] = {
            **run,
            "policy_id": policy_id,
            "fee_bps": fee_bps,
            "slippage_bps": slippage_bps,
            "run_id": "probe",
        }
        base = trades_fn(sub, prepared, parsed, **trades_kw, **_fine_kw(minute))
        # readable: bars up to the exit bar (ts <= exit_ts); 1m bars up to its end
        exit_ts = (
            base.set_index("call_id")["exit_ts_ms"]
            .reindex(sub["call_id"])
            .to_numpy(dtype="float64", na_value=np.nan)
        )
        traded = ~np.isnan(exit_ts)
        exit_i = np.where(traded, exit_ts, 0).astype(np.int64)
        cut = np.where(traded, exit_i + 1, window_end)
        fine_cut = np.where(traded, exit_i + step, window_end + step)
        for variant in VARIANTS:
            probe_alerts, probe_candles = _isolated(
                sub, prepared, series, cut, variant, rng, first, last
            )
            kw: dict[str, Any] = {}
            if minute is not None:
                fine_series, _ = call_arrays(sub, minute)
                _, probe_fine = _isolated(
                    sub, minute, fine_series, fine_cut, variant, rng, first - step, last
                )
                kw = _fine_kw(probe_fine)
            trades = trades_fn(probe_alerts, probe_candles, parsed, **trades_kw, **kw)
            found.append(_diff("trades", variant, base, trades, TRADES_EXEMPT))

    out = (
        pd.concat([f for f in found if len(f)], ignore_index=True)
        if any(len(f) for f in found)
        else pd.DataFrame(columns=PROBE_COLUMNS)
    )
    return out[PROBE_COLUMNS].reset_index(drop=True)


def _fine_kw(fine: PreparedCandles | None) -> dict[str, Any]:
    return {} if fine is None else {"fine": fine}


def _isolated(
    alerts: pd.DataFrame,
    prepared: PreparedCandles,
    series: np.ndarray,
    cut: np.ndarray,
    variant: str,
    rng: np.random.Generator,
    first: np.ndarray,
    last: np.ndarray,
) -> tuple[pd.DataFrame, PreparedCandles]:
    """Alerts whose mints are private copies of their series over [first[k], last[k]): bars
    with ts < cut[k] as they are, later bars removed ("removed") or given random prices
    ("randomized"). A random bar's prices are drawn around the last finite close before the
    cut (1.0 when there is none). Vectorised: one gather per column for all calls."""
    n = len(alerts)
    mints = np.array([f"{m}#probe{k}" for k, m in enumerate(alerts["mint"].tolist())], dtype=object)
    cut = np.asarray(cut, dtype=np.int64)
    lo = np.zeros(n, np.int64)
    mid = np.zeros(n, np.int64)  # the first bar at or after the cut
    hi = np.zeros(n, np.int64)
    for k in np.flatnonzero(np.asarray(series) >= 0):
        s = int(series[k])
        a, b = int(prepared.offsets[s]), int(prepared.offsets[s + 1])
        lo[k], mid[k], hi[k] = a + np.searchsorted(prepared.ts[a:b], [first[k], cut[k], last[k]])
    mid = np.clip(mid, lo, np.maximum(hi, lo))
    if variant == "removed":
        hi = mid  # the bars at or after the cut are removed: they are never read
    lengths = np.maximum(hi - lo, 0)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    owner = np.repeat(np.arange(n), lengths)
    idx = np.arange(int(lengths.sum()), dtype=np.int64) + np.repeat(lo - starts, lengths)
    ts = prepared.ts[idx]
    after = ts >= cut[owner]
    # Prices after the cut are replaced, so only the readable bars' prices are gathered
    # (most of a window lies after a trade's exit).
    readable = idx[~after]
    cols = []
    for x in (prepared.open, prepared.high, prepared.low, prepared.close):
        col = np.empty(len(idx), np.float64)
        col[~after] = x[readable]
        cols.append(col)
    cols.append(prepared.volume[idx])
    if after.any():
        close = cols[3]
        # last finite close before the cut, per call (the readable bars are a prefix)
        pos = np.where(~after & np.isfinite(close), np.arange(len(ts)), -1)
        filled = np.maximum.accumulate(pos) if len(pos) else pos
        before = np.bincount(owner[~after], minlength=n).astype(np.int64)
        end = starts + before - 1
        last_ok = np.where(before > 0, filled[np.maximum(end, 0)] if len(filled) else -1, -1)
        has_ref = last_ok >= starts
        ref = np.where(has_ref, close[np.maximum(last_ok, 0)] if len(close) else 1.0, 1.0)
        r = ref[owner[after]]
        m = len(r)
        o = r * 10.0 ** rng.uniform(-1.5, 1.5, m)
        c = r * 10.0 ** rng.uniform(-1.5, 1.5, m)
        cols[0][after] = o
        cols[1][after] = np.maximum(o, c) * (1.0 + rng.uniform(0.0, 2.0, m))
        cols[2][after] = np.minimum(o, c) * (1.0 - rng.uniform(0.0, 0.9, m))
        cols[3][after] = c
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    probe = PreparedCandles(
        interval=prepared.interval,
        ts=ts.astype(np.int64, copy=False),
        open=cols[0],
        high=cols[1],
        low=cols[2],
        close=cols[3],
        volume=cols[4],
        offsets=offsets,
        chain=alerts["chain"].to_numpy(dtype=object),
        mint=mints,
    )
    probe_alerts = alerts.assign(mint=mints)
    return probe_alerts, probe


def _same(a: Any, b: Any) -> bool:
    na, nb = _isna(a), _isna(b)
    if na or nb:
        return na and nb
    return bool(a == b)


def _isna(v: Any) -> bool:
    return v is None or (not isinstance(v, str) and bool(pd.isna(v)))


def _changed(b: pd.Series, p: pd.Series) -> np.ndarray:
    """Positions where two aligned columns differ; missing equals missing."""
    na_b = b.isna().to_numpy(dtype=bool)
    na_p = p.isna().to_numpy(dtype=bool)
    both = ~na_b & ~na_p
    bv, pv = b.to_numpy(), p.to_numpy()
    eq = na_b & na_p
    if bv.dtype.kind in "biuf" and pv.dtype.kind in "biuf":
        eq |= both & (bv == pv)
    else:
        at = np.flatnonzero(both)
        eq[at] = [_same(x, y) for x, y in zip(bv[at], pv[at], strict=True)]
    return ~eq


def _diff(
    layer: str, variant: str, base: pd.DataFrame, probe: pd.DataFrame, exempt: frozenset[str]
) -> pd.DataFrame:
    """Changed cells between two frames keyed by call_id (after the private mint names are
    put back: `mint` is compared without its probe suffix)."""
    probe = probe.copy()
    if "mint" in probe.columns:
        probe["mint"] = probe["mint"].astype(str).str.replace(r"#probe\d+$", "", regex=True)
    b = base.set_index("call_id")
    p = probe.set_index("call_id")
    rows: list[tuple[str, str, str, str, str, str]] = []
    for cid in sorted(set(b.index) ^ set(p.index), key=str):
        rows.append((layer, variant, str(cid), ROW, str(cid in b.index), str(cid in p.index)))
    common = [cid for cid in b.index if cid in p.index]
    bc, pc = b.loc[common], p.loc[common]
    columns = [c for c in b.columns if c not in exempt and c != "run_id"]
    for col in columns:
        if col not in p.columns:
            rows.append((layer, variant, "", col, "present", "missing"))
            continue
        for i in np.flatnonzero(_changed(bc[col], pc[col])).tolist():
            x, y = bc[col].iat[i], pc[col].iat[i]
            rows.append((layer, variant, str(common[i]), col, repr(x), repr(y)))
    return pd.DataFrame(rows, columns=PROBE_COLUMNS)
