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
from quantbot_assets.engine.truth import DEFAULT_HORIZON_MS, compute_paths
from quantbot_assets.engine.windows import window_complete_probe_ms

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
    ("randomized")."""
    parts: list[tuple[np.ndarray, ...]] = []
    mints = []
    lengths = []
    for k in range(len(alerts)):
        s = int(series[k])
        mint = f"{alerts['mint'].iat[k]}#probe{k}"
        mints.append(mint)
        if s < 0:
            lengths.append(0)
            continue
        a, b = int(prepared.offsets[s]), int(prepared.offsets[s + 1])
        a, b = (
            a + int(np.searchsorted(prepared.ts[a:b], first[k])),
            a + int(np.searchsorted(prepared.ts[a:b], last[k])),
        )
        ts = prepared.ts[a:b]
        cols = [
            x[a:b].copy()
            for x in (prepared.open, prepared.high, prepared.low, prepared.close, prepared.volume)
        ]
        after = ts >= cut[k]
        if variant == "removed":
            keep = ~after
            ts = ts[keep]
            cols = [x[keep] for x in cols]
        elif after.any():
            m = int(after.sum())
            before = cols[3][~after]
            ref = before[np.isfinite(before)][-1] if np.isfinite(before).any() else 1.0
            o = ref * 10.0 ** rng.uniform(-1.5, 1.5, m)
            c = ref * 10.0 ** rng.uniform(-1.5, 1.5, m)
            cols[0][after] = o
            cols[1][after] = np.maximum(o, c) * (1.0 + rng.uniform(0.0, 2.0, m))
            cols[2][after] = np.minimum(o, c) * (1.0 - rng.uniform(0.0, 0.9, m))
            cols[3][after] = c
        parts.append((ts, *cols))
        lengths.append(len(ts))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)

    def cat(i: int, dtype: type) -> np.ndarray:
        return np.concatenate([p[i] for p in parts]) if parts else np.zeros(0, dtype)

    probe = PreparedCandles(
        interval=prepared.interval,
        ts=cat(0, np.int64),
        open=cat(1, np.float64),
        high=cat(2, np.float64),
        low=cat(3, np.float64),
        close=cat(4, np.float64),
        volume=cat(5, np.float64),
        offsets=offsets,
        chain=alerts["chain"].to_numpy(dtype=object),
        mint=np.array(mints, dtype=object),
    )
    probe_alerts = alerts.assign(mint=np.array(mints, dtype=object))
    return probe_alerts, probe


def _same(a: Any, b: Any) -> bool:
    na, nb = _isna(a), _isna(b)
    if na or nb:
        return na and nb
    return bool(a == b)


def _isna(v: Any) -> bool:
    return v is None or (not isinstance(v, str) and bool(pd.isna(v)))


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
    columns = [c for c in b.columns if c not in exempt and c != "run_id"]
    for col in columns:
        if col not in p.columns:
            rows.append((layer, variant, "", col, "present", "missing"))
            continue
        bv = b.loc[common, col].tolist()
        pv = p.loc[common, col].tolist()
        for cid, x, y in zip(common, bv, pv, strict=True):
            if not _same(x, y):
                rows.append((layer, variant, str(cid), col, repr(x), repr(y)))
    return pd.DataFrame(rows, columns=PROBE_COLUMNS)
