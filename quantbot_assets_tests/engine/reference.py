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
- Ambiguity: a bar whose open gaps through a stop is decided by the gap (not
  ambiguous); a bar with a NaN open is not ambiguous (NaN proves neither
  "stop < open" nor "open < level"); of a combo's take-profits only the lowest
  is live (it closes the whole position).
- Drill-down: when the 1m bars of an ambiguous coarse bar leave the position
  (partly) open at the end of the coarse bar, they prove no order: the coarse
  pessimistic result stands (ambiguous, not resolved).
- window_complete looks for a bar in [alert + horizon, alert + horizon +
  max(1 h, interval)): no bar within that probe after the horizon reads as
  incomplete, whatever lies further out.

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
    "window_complete",
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
    "ambiguous",
    "ambiguity_resolved",
    "optimistic_return_bps",
    "window_complete",
]
PROBE_MS = 3_600_000  # how far past the horizon a bar proves the window complete (at least)


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
    bar_index: int  # index into Outcome.mae_bars
    price: float  # before slippage
    size: float
    reason: str
    at_open: bool


@dataclass
class Outcome:
    """A replayed trade: its fills, the bars its MAE runs over (W up to the exit bar; when a
    drill-down resolved the exit bar, W before it and then the 1m bars up to the deciding
    one), the exit bar's time, and the ambiguity fields."""

    p0: float
    t0: int
    fills: list[Fill]
    mae_bars: list[Bar]
    exit_ts: int
    ambiguous: bool = False
    resolved: bool = False
    optimistic_fills: list[Fill] | None = None


def _ladder_complete(remaining_levels: list, total: float) -> bool:
    return not remaining_levels and abs(total - 1.0) <= LADDER_TOLERANCE


def _bar_rules(
    bar: Bar,
    j: int,
    stops: list[tuple[float, str]],
    tps: list[float],
    ladder_open: list[tuple[float, float]],
    p0: float,
    remaining: float,
    ladder_total: float,
    fills: list[Fill],
) -> tuple[str, float, list[tuple[float, float]], Any]:
    """Steps 2 and 3 on one bar, the position open at its start. Appends fills; returns
    (state, remaining, ladder levels still open, info): state "closed" (the position is
    closed on this bar), "open" (still open); info on an ambiguous stop exit is
    (stop level, reason, ambiguous levels as (level, fraction)), else None."""
    # 2, at the open: a gap through the stop (the highest level names the reason)
    gapped = [(lv, r) for lv, r in stops if bar.open <= lv]
    if gapped:
        level, reason = max(gapped, key=lambda f: (f[0], -STOP_REASON_ORDER[f[1]]))
        fills.append(Fill(j, bar.open, remaining, reason, True))
        return "closed", 0.0, ladder_open, None
    # 3a: levels crossed at the open fill there
    if tps and bar.open >= tps[0]:
        fills.append(Fill(j, bar.open, remaining, "take_profit", True))
        return "closed", 0.0, ladder_open, None
    still = []
    for multiple, fraction in ladder_open:
        if bar.open >= p0 * multiple:
            fills.append(Fill(j, bar.open, fraction, "take_profit", True))
            remaining -= fraction
        else:
            still.append((multiple, fraction))
    filled_at_open = len(still) < len(ladder_open)
    ladder_open = still
    if filled_at_open and _ladder_complete(ladder_open, ladder_total):
        last = fills[-1]
        fills[-1] = Fill(last.bar_index, last.price, last.size, "ladder_complete", True)
        return "closed", 0.0, ladder_open, None
    # 2, inside the bar: what is open meets the stops
    fired = [(lv, r) for lv, r in stops if bar.low <= lv]
    if fired:
        level, reason = max(fired, key=lambda f: (f[0], -STOP_REASON_ORDER[f[1]]))
        inside = []
        if not math.isnan(bar.open):
            if tps:
                if bar.open < tps[0] <= bar.high:
                    inside = [(tps[0], remaining)]
            else:
                inside = [(p0 * m, f) for m, f in ladder_open if bar.open < p0 * m <= bar.high]
        fills.append(Fill(j, level, remaining, reason, False))
        info = (level, reason, sorted(inside)) if inside else None
        return "closed", 0.0, ladder_open, info
    # 3b: levels inside the bar
    if tps and bar.high >= tps[0]:
        fills.append(Fill(j, tps[0], remaining, "take_profit", False))
        return "closed", 0.0, ladder_open, None
    still = []
    for multiple, fraction in ladder_open:
        if bar.high >= p0 * multiple:
            fills.append(Fill(j, p0 * multiple, fraction, "take_profit", False))
            remaining -= fraction
        else:
            still.append((multiple, fraction))
    if len(still) < len(ladder_open) and _ladder_complete(still, ladder_total):
        last = fills[-1]
        fills[-1] = Fill(last.bar_index, last.price, last.size, "ladder_complete", False)
        return "closed", 0.0, still, None
    return "open", remaining, still, None


def replay(
    window: list[Bar],
    policy: dict,
    fine_bars: list[Bar] | None = None,
    interval_ms: int = 60_000,
) -> Outcome:
    """Replay one policy over W. `fine_bars`: the call's 1m bars for the drill-down of a
    coarser run (None: no drill-down)."""
    rules = flatten(policy)
    p0, t0 = window[0].open, window[0].ts
    remaining = 1.0
    fills: list[Fill] = []
    ladder_open = list(rules.ladder) if rules.ladder is not None else []
    peak = math.nan  # highest high of bars e .. j-1
    armed = [False] * len(rules.trails)
    hold_until = t0 + min(rules.max_holds) if rules.max_holds else None
    fixed_levels = [(p0 * (1 - bps / 10000), reason) for reason, bps in rules.fixed_stops]
    activations = [p0 * (1 + activation_bps / 10000) for activation_bps, _ in rules.trails]
    # a combo's take-profits close the whole position: only the lowest can fire
    tps = sorted(p0 * (1 + bps / 10000) for bps in rules.take_profit_bps)[:1]
    ladder_total = sum(f for _, f in rules.ladder) if rules.ladder is not None else math.nan

    for j, bar in enumerate(window):
        # 1. time stop (the earliest max_hold of a combo), at a proven open
        if hold_until is not None and bar.ts >= hold_until and not math.isnan(bar.open):
            fills.append(Fill(j, bar.open, remaining, "time_stop", True))
            return Outcome(p0, t0, fills, window[: j + 1], bar.ts)
        stops = list(fixed_levels)
        for (_, trail_bps), is_armed in zip(rules.trails, armed, strict=True):
            if is_armed:
                stops.append((peak * (1 - trail_bps / 10000), "trailing_stop"))
        before = list(fills)
        before_remaining, before_ladder = remaining, list(ladder_open)
        state, remaining, ladder_open, info = _bar_rules(
            bar, j, stops, tps, ladder_open, p0, remaining, ladder_total, fills
        )
        if state == "closed":
            out = Outcome(p0, t0, fills, window[: j + 1], bar.ts)
            if info is not None:
                level, reason, inside = info
                out.ambiguous = True
                # optimistic: the ambiguous levels fill first (lowest first), the rest exits
                # at the stop level that fired
                opt = fills[:-1]
                rest = fills[-1].size
                for lv, size in inside:
                    opt.append(Fill(j, lv, size, "take_profit", False))
                    rest -= size
                left = [(m, f) for m, f in ladder_open if (p0 * m, f) not in inside]
                if not tps and not _ladder_complete(left, ladder_total):
                    opt.append(Fill(j, level, rest, reason, False))
                out.optimistic_fills = opt
                if fine_bars is not None:
                    _drill(
                        out,
                        window,
                        j,
                        fine_bars,
                        interval_ms,
                        stops,
                        tps,
                        before,
                        before_remaining,
                        before_ladder,
                        p0,
                        ladder_total,
                    )
            return out
        # 4. the bar's high updates the peak and arms trails for the next bar
        if not math.isnan(bar.high):
            peak = bar.high if math.isnan(peak) else max(peak, bar.high)
            for i, activation in enumerate(activations):
                if bar.high >= activation:
                    armed[i] = True

    last = len(window) - 1
    fills.append(Fill(last, window[-1].close, remaining, "end_of_window", False))
    return Outcome(p0, t0, fills, window, window[-1].ts)


def _drill(
    out: Outcome,
    window: list[Bar],
    j: int,
    fine_bars: list[Bar],
    interval_ms: int,
    stops: list[tuple[float, str]],
    tps: list[float],
    before: list[Fill],
    remaining: float,
    ladder_open: list[tuple[float, float]],
    p0: float,
    ladder_total: float,
) -> None:
    """Replay coarse bar j from its 1m bars (levels as of the start of the bar); on success
    the 1m fills replace the coarse ones."""
    start = window[j].ts
    minutes = [b for b in fine_bars if start <= b.ts < start + interval_ms]
    fills = list(before)
    offset = j  # 1m bar k of the drill-down is mae bar j + k
    for k, m in enumerate(minutes):
        state, remaining, ladder_open, info = _bar_rules(
            m, offset + k, stops, tps, ladder_open, p0, remaining, ladder_total, fills
        )
        if state == "closed":
            if info is not None:
                return  # an ambiguous minute: the coarse result stands
            out.fills = fills
            out.mae_bars = window[:j] + minutes[: k + 1]
            out.ambiguous = False
            out.resolved = True
            out.optimistic_fills = None
            return
    # no minutes, or the position is still open after them: the coarse result stands


def trade_row(
    out: Outcome,
    peak_multiple: float,
    *,
    fee_bps: float,
    slippage_bps: float,
) -> dict[str, object]:
    bars, fills = out.mae_bars, out.fills
    p0, t0 = out.p0, out.t0
    entry_px = p0 * (1 + slippage_bps / 10000)

    def exit_price(fs: list[Fill]) -> float:
        sized = [f for f in fs if f.size > 0]
        total = sum(f.size for f in sized)
        return sum(f.size * f.price * (1 - slippage_bps / 10000) for f in sized) / total

    def net(px: float) -> float:
        return (px * (1 - fee_bps / 10000) / (entry_px * (1 + fee_bps / 10000)) - 1) * 10000

    exit_px = exit_price(fills)
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
    lows = [b.low for b in bars[:x]]
    lows.append(last.price if replace_low else bars[x].low)
    mae = min([0.0] + [(lo / p0 - 1) * 10000 for lo in lows if not math.isnan(lo)])
    realized = net(exit_px)
    optimistic = realized
    if out.ambiguous and out.optimistic_fills is not None:
        optimistic = net(exit_price(out.optimistic_fills))
    return {
        "entry_ts_ms": t0,
        "entry_px": entry_px,
        "exit_ts_ms": out.exit_ts,
        "exit_px": exit_px,
        "exit_reason": last.reason,
        "realized_return_bps": realized,
        "stop_out": any(f.reason in STOP_REASONS for f in fills),
        "max_adverse_excursion_bps": mae,
        "time_exposed_ms": out.exit_ts - t0,
        "tail_capture": None if peak_multiple <= 1 else gross / ((peak_multiple - 1) * 10000),
        "ambiguous": out.ambiguous,
        "ambiguity_resolved": out.resolved,
        "optimistic_return_bps": optimistic,
    }


def window_complete(bars: list[Bar], alert_ts: int, horizon_ms: int, interval: str) -> bool:
    stop = alert_ts + horizon_ms
    probe = max(PROBE_MS, INTERVAL_MS[interval])
    return any(stop <= b.ts < stop + probe for b in bars)


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
        row["window_complete"] = window_complete(bars, int(a["alert_ts_ms"]), horizon_ms, interval)
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
    fine: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """simulate_policy by the book (`series` as in reference_paths; `fine`: 1m candles for
    the drill-down of a coarser run)."""
    pol = json.loads(policy) if isinstance(policy, str) else policy
    series = bars_by_series(candles, interval) if series is None else series
    fine_series = bars_by_series(fine, "1m") if fine is not None else None
    rows = []
    for a in alerts.to_dict("records"):
        bars = series.get((str(a["chain"]), str(a["mint"])), [])
        entry = entry_for(bars, int(a["alert_ts_ms"]), horizon_ms, entry_delay_ms)
        if entry.excluded is not None:
            continue
        peak_multiple = _nanmax([b.high for b in entry.window]) / entry.p0
        minutes = None
        if fine_series is not None and interval != "1m":
            minutes = fine_series.get((str(a["chain"]), str(a["mint"])), [])
        out = replay(entry.window, pol, minutes, INTERVAL_MS[interval])
        row = _call_fields(a, run_id)
        row["policy_id"] = policy_id
        row.update(trade_row(out, peak_multiple, fee_bps=fee_bps, slippage_bps=slippage_bps))
        row["window_complete"] = window_complete(bars, int(a["alert_ts_ms"]), horizon_ms, interval)
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
    opt = [float(x) for x in trades["optimistic_return_bps"]]
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
        "ambiguous_trade_rate": sum(bool(x) for x in trades["ambiguous"]) / n if n else None,
        "avg_optimistic_return_bps": avg(opt),
        "median_optimistic_return_bps": pct(opt, 50),
        "window_incomplete_trades": sum(not bool(x) for x in trades["window_complete"]),
    }
