"""A slow, obviously correct reference of docs/semantics.md, for checking the engine.

Written from the specification (docs/semantics.md) only, one call and one bar at a time,
for clarity and not for speed. Nothing here imports the engine: the point is
an independent second reading of the spec.

Readings where the specification is silent (kept conservative, "never assume a
fill the candles cannot prove"; each is listed in the test report):

- Malformed bars stay in place; a price field that is not finite or <= 0 is
  NaN, and a bar with high < low has both high and low NaN.
- A time stop that falls due on a bar whose open is NaN cannot fill at that
  open: it waits for the first later bar with a proven open (stops and take
  profits still fire on the NaN-open bar from its low/high).
- On a ladder's last bar, if any level filled intrabar the last fill is
  intrabar (fills at the open come first), so the bar's low is kept for MAE.

Not covered (left out of the generated comparison on purpose): a window with
no proven high or low at all (max/min over nothing), a NaN close on the last
bar of W (end_of_window at an unknown price), and resampling of malformed 1m
bars into 5m bars.

Using the spec tests (quantbot_assets_tests/engine):

    pytest quantbot_assets_tests/engine -q

- test_truth_cases / test_policy_cases / test_summary_cases: hand-computed
  cases, the arithmetic in each comment; the replay cases run on both the
  engine and this reference ([engine] / [reference] in the test id), so a case
  failing on both means the test is wrong, on one means that side is.
- test_properties: hypothesis properties (seeded, no shrinking); the failing
  example is printed as a data frame and a policy.
- test_reference_compare: ~3000 generated calls, engine against this module,
  column by column; a failure lists the first mismatches as
  "column call_id: engine X reference Y". To replay one call, filter
  market_1m()'s alerts on that call_id and call both implementations.

When docs/semantics.md changes, change this module first (it is short), then the
hand cases whose comments cite the changed rule.
"""

from __future__ import annotations

import json
import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

INTERVAL_MS: dict[str, int] = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "1h": 3_600_000}
STOP_REASON_ORDER: dict[str, int] = {"stop_loss": 0, "hard_stop": 1, "trailing_stop": 2}
STOP_REASONS = frozenset(STOP_REASON_ORDER)
LADDER_TOLERANCE = 1e-9

PATH_COLUMNS = [
    "run_id",
    "call_id",
    "caller_name",
    "mint",
    "chain",
    "interval",
    "alert_ts_ms",
    "t0_ms",
    "p0",
    "hit_2x",
    "t_2x_ms",
    "hit_3x",
    "t_3x_ms",
    "hit_4x",
    "t_4x_ms",
    "peak_multiple",
    "peak_ts_ms",
    "dd_bps",
    "dd_to_2x_bps",
    "alert_to_activity_ms",
    "bars",
]
TRADE_COLUMNS = [
    "run_id",
    "policy_id",
    "call_id",
    "caller_name",
    "mint",
    "chain",
    "entry_ts_ms",
    "entry_px",
    "exit_ts_ms",
    "exit_px",
    "exit_reason",
    "realized_return_bps",
    "stop_out",
    "max_adverse_excursion_bps",
    "time_exposed_ms",
    "tail_capture",
]


@dataclass(frozen=True)
class Bar:
    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float


def _proven(x: float) -> float:
    """A price that proves something: finite and > 0, else NaN."""
    x = float(x)
    return x if math.isfinite(x) and x > 0 else math.nan


def sanitize(bar: Bar) -> Bar:
    o, h, lo, c = _proven(bar.open), _proven(bar.high), _proven(bar.low), _proven(bar.close)
    if h < lo:  # both finite and inconsistent: neither is trustworthy
        h, lo = math.nan, math.nan
    return Bar(bar.ts, o, h, lo, c, bar.volume)


def resample(bars: list[Bar], interval_ms: int) -> list[Bar]:
    """1m bars -> interval bars aligned to the interval: first open, max high,
    min low, last close, summed volume (maxima and minima skip NaN)."""
    buckets: dict[int, list[Bar]] = {}
    for b in sorted(bars, key=lambda b: b.ts):
        buckets.setdefault(b.ts - b.ts % interval_ms, []).append(b)
    out = []
    for start in sorted(buckets):
        group = buckets[start]
        highs = [b.high for b in group if not math.isnan(b.high)]
        lows = [b.low for b in group if not math.isnan(b.low)]
        out.append(
            Bar(
                start,
                group[0].open,
                max(highs) if highs else math.nan,
                min(lows) if lows else math.nan,
                group[-1].close,
                sum(b.volume for b in group),
            )
        )
    return out


Series = dict[tuple[str, str], list[Bar]]


def bars_by_series(candles: pd.DataFrame, interval: str) -> Series:
    """(chain, mint) -> sanitized bars of the run interval, in time order.

    The source is 1m candles; other intervals are resampled from them."""
    src = candles[candles["interval"] == "1m"]
    out: Series = {}
    columns = [src[c].tolist() for c in ("chain", "mint", "ts_ms", "open", "high", "low", "close")]
    volumes = src["volume"].tolist()
    for (chain, mint, ts, o, h, lo, c), v in zip(zip(*columns, strict=True), volumes, strict=True):
        bar = sanitize(Bar(int(ts), float(o), float(h), float(lo), float(c), float(v)))
        out.setdefault((str(chain), str(mint)), []).append(bar)
    for key, bars in out.items():
        bars.sort(key=lambda b: b.ts)
        if interval != "1m":
            out[key] = resample(bars, INTERVAL_MS[interval])
    return out


@dataclass(frozen=True)
class Entry:
    """The entry bar and the window W of one call, or why there is none."""

    excluded: str | None
    window: list[Bar]

    @property
    def t0(self) -> int:
        return self.window[0].ts

    @property
    def p0(self) -> float:
        return self.window[0].open


def entry_for(bars: list[Bar], alert_ts: int, horizon_ms: int, entry_delay_ms: int) -> Entry:
    end = alert_ts + horizon_ms
    window = [b for b in bars if b.ts >= alert_ts + entry_delay_ms and b.ts < end]
    if not window:
        return Entry("no_candles", [])
    if not (math.isfinite(window[0].open) and window[0].open > 0):
        return Entry("invalid_entry_price", window)
    return Entry(None, window)


def _nanmin(xs: list[float]) -> float:
    xs = [x for x in xs if not math.isnan(x)]
    return min(xs) if xs else math.nan


def _nanmax(xs: list[float]) -> float:
    xs = [x for x in xs if not math.isnan(x)]
    return max(xs) if xs else math.nan


def truth_row(window: list[Bar], alert_ts: int, activity_move_bps: float) -> dict[str, object]:
    p0 = window[0].open
    row: dict[str, object] = {"t0_ms": window[0].ts, "p0": p0}
    first_2x: int | None = None
    for k in (2, 3, 4):
        hit = next((i for i, b in enumerate(window) if b.high >= k * p0), None)
        row[f"hit_{k}x"] = hit is not None
        row[f"t_{k}x_ms"] = None if hit is None else window[hit].ts
        if k == 2:
            first_2x = hit
    peak = _nanmax([b.high for b in window])
    row["peak_multiple"] = peak / p0
    row["peak_ts_ms"] = next((b.ts for b in window if b.high == peak), None)
    row["dd_bps"] = (_nanmin([b.low for b in window]) / p0 - 1) * 10000
    if first_2x is None:
        row["dd_to_2x_bps"] = None
    else:
        row["dd_to_2x_bps"] = (_nanmin([b.low for b in window[: first_2x + 1]]) / p0 - 1) * 10000
    m = activity_move_bps / 10000
    active = next(
        (b.ts for b in window if b.high >= p0 * (1 + m) or b.low <= p0 * (1 - m)),
        None,
    )
    row["alert_to_activity_ms"] = None if active is None else active - alert_ts
    row["bars"] = len(window)
    return row


def truth_is_defined(window: list[Bar]) -> bool:
    """False when every high or every low of W is NaN: the specification gives no
    value for a max/min over nothing, so such calls stay out of comparisons."""
    return not (
        math.isnan(_nanmax([b.high for b in window]))
        or math.isnan(_nanmin([b.low for b in window]))
    )


# ---------------------------------------------------------------- policies


@dataclass
class Rules:
    """A policy flattened into the checks of one bar."""

    max_holds: list[int] = field(default_factory=list)
    fixed_stops: list[tuple[str, float]] = field(default_factory=list)  # (reason, bps)
    trails: list[tuple[float, float]] = field(default_factory=list)  # (activation, trail)
    take_profit_bps: list[float] = field(default_factory=list)
    ladder: list[tuple[float, float]] | None = None  # (multiple, fraction)


def flatten(policy: dict, rules: Rules | None = None) -> Rules:
    rules = rules if rules is not None else Rules()
    kind = policy["kind"]
    if kind == "fixed_stop":
        rules.fixed_stops.append(("stop_loss", float(policy["stop_loss_bps"])))
        if policy.get("take_profit_bps") is not None:
            rules.take_profit_bps.append(float(policy["take_profit_bps"]))
    elif kind == "time_stop":
        rules.max_holds.append(int(policy["max_hold_ms"]))
        if policy.get("take_profit_bps") is not None:
            rules.take_profit_bps.append(float(policy["take_profit_bps"]))
    elif kind == "trailing_stop":
        rules.trails.append((float(policy["activation_bps"]), float(policy["trail_bps"])))
        if policy.get("hard_stop_bps") is not None:
            rules.fixed_stops.append(("hard_stop", float(policy["hard_stop_bps"])))
    elif kind == "ladder":
        rules.ladder = [(float(lv["multiple"]), float(lv["fraction"])) for lv in policy["levels"]]
        if policy.get("stop_loss_bps") is not None:
            rules.fixed_stops.append(("stop_loss", float(policy["stop_loss_bps"])))
    elif kind == "combo":
        for sub in policy["policies"]:
            flatten(sub, rules)
    else:
        raise ValueError(f"unknown kind {kind!r}")
    return rules


@dataclass(frozen=True)
class Fill:
    bar_index: int
    price: float  # before slippage
    size: float
    reason: str
    at_open: bool


def replay(window: list[Bar], policy: dict) -> list[Fill]:
    """Replay one policy over W; returns the fills in order (sizes sum to the
    position, 1, except for a complete ladder whose fractions are within 1e-9)."""
    rules = flatten(policy)
    p0, t0 = window[0].open, window[0].ts
    remaining = 1.0
    fills: list[Fill] = []
    ladder_open = list(rules.ladder) if rules.ladder is not None else []
    peak = math.nan  # highest high of bars e .. j-1
    armed = [False] * len(rules.trails)
    # Levels fixed at entry (relative to p0), computed once.
    hold_until = t0 + min(rules.max_holds) if rules.max_holds else None
    fixed_levels = [(p0 * (1 - bps / 10000), reason) for reason, bps in rules.fixed_stops]
    activations = [p0 * (1 + activation_bps / 10000) for activation_bps, _ in rules.trails]
    tps = sorted(p0 * (1 + bps / 10000) for bps in rules.take_profit_bps)
    ladder_total = sum(f for _, f in rules.ladder) if rules.ladder is not None else 0.0

    for j, bar in enumerate(window):
        # 1. time stop (the earliest max_hold of a combo), at a proven open
        if hold_until is not None and bar.ts >= hold_until and not math.isnan(bar.open):
            fills.append(Fill(j, bar.open, remaining, "time_stop", True))
            return fills

        # 2. stops: the highest level wins; ties go by stop_loss, hard_stop, trailing_stop
        levels = list(fixed_levels)
        for (_, trail_bps), is_armed in zip(rules.trails, armed, strict=True):
            if is_armed:
                levels.append((peak * (1 - trail_bps / 10000), "trailing_stop"))
        fired = [(lv, r) for lv, r in levels if bar.open <= lv or bar.low <= lv]
        if fired:
            level, reason = max(fired, key=lambda f: (f[0], -STOP_REASON_ORDER[f[1]]))
            if bar.open <= level:
                fills.append(Fill(j, bar.open, remaining, reason, True))
            else:
                fills.append(Fill(j, level, remaining, reason, False))
            return fills

        # 3. take profits (the lowest level of a combo wins) or ladder levels (all fill)
        if tps:
            hit = [lv for lv in tps if bar.open >= lv or bar.high >= lv]
            if hit:
                lv = hit[0]
                if bar.open >= lv:
                    fills.append(Fill(j, bar.open, remaining, "take_profit", True))
                else:
                    fills.append(Fill(j, lv, remaining, "take_profit", False))
                return fills
        if ladder_open:
            still_open = []
            for multiple, fraction in ladder_open:
                lv = p0 * multiple
                if bar.open >= lv:
                    fills.append(Fill(j, bar.open, fraction, "take_profit", True))
                elif bar.high >= lv:
                    fills.append(Fill(j, lv, fraction, "take_profit", False))
                else:
                    still_open.append((multiple, fraction))
                    continue
                remaining -= fraction
            ladder_open = still_open
            if not ladder_open and abs(ladder_total - 1.0) <= LADDER_TOLERANCE:
                last = fills[-1]
                fills[-1] = Fill(
                    last.bar_index, last.price, last.size, "ladder_complete", last.at_open
                )
                return fills

        # 4. the bar's high updates the peak and arms trails for the next bar
        if not math.isnan(bar.high):
            peak = bar.high if math.isnan(peak) else max(peak, bar.high)
            for i, activation in enumerate(activations):
                if bar.high >= activation:
                    armed[i] = True

    fills.append(Fill(len(window) - 1, window[-1].close, remaining, "end_of_window", False))
    return fills


def trade_row(
    window: list[Bar],
    fills: list[Fill],
    peak_multiple: float,
    *,
    fee_bps: float,
    slippage_bps: float,
) -> dict[str, object]:
    p0, t0 = window[0].open, window[0].ts
    entry_px = p0 * (1 + slippage_bps / 10000)
    sized = [f for f in fills if f.size > 0]
    total = sum(f.size for f in sized)
    exit_px = sum(f.size * f.price * (1 - slippage_bps / 10000) for f in sized) / total
    gross = (exit_px / entry_px - 1) * 10000
    last = fills[-1]
    x = last.bar_index
    # Fills on bar x at the open come before intrabar fills; the last fill
    # replaces the low when it is a stop fill or a fill at the open.
    last_intrabar_tp = any(
        f.bar_index == x and not f.at_open and f.reason in ("take_profit", "ladder_complete")
        for f in fills
    )
    replace_low = (last.reason in STOP_REASONS or last.at_open) and not (
        last.reason in ("take_profit", "ladder_complete") and last_intrabar_tp
    )
    lows = [b.low for b in window[:x]]
    lows.append(last.price if replace_low else window[x].low)
    mae = min([0.0] + [(lo / p0 - 1) * 10000 for lo in lows if not math.isnan(lo)])
    exit_ts = window[x].ts
    return {
        "entry_ts_ms": t0,
        "entry_px": entry_px,
        "exit_ts_ms": exit_ts,
        "exit_px": exit_px,
        "exit_reason": last.reason,
        "realized_return_bps": gross - 2 * fee_bps,
        "stop_out": any(f.reason in STOP_REASONS for f in fills),
        "max_adverse_excursion_bps": mae,
        "time_exposed_ms": exit_ts - t0,
        "tail_capture": None if peak_multiple <= 1 else gross / ((peak_multiple - 1) * 10000),
    }


# ---------------------------------------------------------------- frames


def _call_fields(alert: Mapping[Hashable, Any], run_id: str) -> dict[str, object]:
    fields = ("call_id", "caller_name", "mint", "chain")
    return {"run_id": run_id, **{k: str(alert[k]) for k in fields}}


def reference_paths(
    alerts: pd.DataFrame,
    candles: pd.DataFrame,
    *,
    interval: str = "1m",
    horizon_ms: int = 172_800_000,
    entry_delay_ms: int = 0,
    activity_move_bps: float = 1000,
    run_id: str = "",
    series: Series | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """compute_paths by the book. `series`: bars_by_series(candles, interval), when the
    caller has already built them (the bulk comparison reuses them)."""
    series = bars_by_series(candles, interval) if series is None else series
    rows, excluded = [], []
    for a in alerts.to_dict("records"):
        bars = series.get((str(a["chain"]), str(a["mint"])), [])
        entry = entry_for(bars, int(a["alert_ts_ms"]), horizon_ms, entry_delay_ms)
        if entry.excluded is not None:
            excluded.append({"call_id": str(a["call_id"]), "reason": entry.excluded})
            continue
        row = _call_fields(a, run_id)
        row["interval"] = interval
        row["alert_ts_ms"] = int(a["alert_ts_ms"])
        row.update(truth_row(entry.window, int(a["alert_ts_ms"]), activity_move_bps))
        rows.append(row)
    return pd.DataFrame(rows, columns=PATH_COLUMNS), pd.DataFrame(
        excluded, columns=["call_id", "reason"]
    )


def reference_trades(
    alerts: pd.DataFrame,
    candles: pd.DataFrame,
    policy: dict | str,
    *,
    policy_id: str,
    interval: str = "1m",
    horizon_ms: int = 172_800_000,
    entry_delay_ms: int = 0,
    fee_bps: float = 0.0,
    slippage_bps: float = 0.0,
    run_id: str = "",
    series: Series | None = None,
) -> pd.DataFrame:
    """simulate_policy by the book (`series` as in reference_paths)."""
    pol = json.loads(policy) if isinstance(policy, str) else policy
    series = bars_by_series(candles, interval) if series is None else series
    rows = []
    for a in alerts.to_dict("records"):
        bars = series.get((str(a["chain"]), str(a["mint"])), [])
        entry = entry_for(bars, int(a["alert_ts_ms"]), horizon_ms, entry_delay_ms)
        if entry.excluded is not None:
            continue
        peak_multiple = _nanmax([b.high for b in entry.window]) / entry.p0
        fills = replay(entry.window, pol)
        row = _call_fields(a, run_id)
        row["policy_id"] = policy_id
        row.update(
            trade_row(
                entry.window, fills, peak_multiple, fee_bps=fee_bps, slippage_bps=slippage_bps
            )
        )
        rows.append(row)
    return pd.DataFrame(rows, columns=TRADE_COLUMNS)


def reference_summary(
    trades: pd.DataFrame, calls_processed: int, calls_excluded: int
) -> dict[str, float | int | None]:
    r = [float(x) for x in trades["realized_return_bps"]]
    n = len(r)

    def avg(xs: list[float]) -> float | None:
        return sum(xs) / len(xs) if xs else None

    def pct(xs: list[float], q: float) -> float | None:
        return float(np.percentile(xs, q)) if xs else None

    gains = sum(x for x in r if x > 0)
    losses = sum(x for x in r if x < 0)
    mae = [float(x) for x in trades["max_adverse_excursion_bps"]]
    exposed = [float(x) for x in trades["time_exposed_ms"]]
    tails = [float(x) for x in trades["tail_capture"] if x is not None and not pd.isna(x)]
    return {
        "calls_processed": calls_processed,
        "calls_excluded": calls_excluded,
        "trades_count": n,
        "avg_return_bps": avg(r),
        "median_return_bps": pct(r, 50),
        "p25_return_bps": pct(r, 25),
        "p75_return_bps": pct(r, 75),
        "p90_return_bps": pct(r, 90),
        "win_rate": sum(1 for x in r if x > 0) / n if n else None,
        "profit_factor": gains / abs(losses) if losses < 0 else None,
        "stop_out_rate": sum(bool(s) for s in trades["stop_out"]) / n if n else None,
        "avg_max_adverse_excursion_bps": avg(mae),
        "avg_time_exposed_ms": avg(exposed),
        "median_time_exposed_ms": pct(exposed, 50),
        "avg_tail_capture": avg(tails),
        "median_tail_capture": pct(tails, 50),
    }
