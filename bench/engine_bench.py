"""Benchmark of the backtest engine on generated memecoin-like candles.

    python bench/engine_bench.py                 # 20,000 calls x 2,880 1m bars (about 1 min)
    python bench/engine_bench.py --calls 500     # smoke run

Every figure is measured in one run on the same data: candles in a pandas DataFrame built the
way `pd.read_parquet` returns a pandas-written Parquet file (chain, mint and interval
categorical, ts_ms int64, prices float64). Bars/s count the bars inside the calls' windows
(calls x 2,880); each timing is the best of --repeat runs; JIT compile (or cache load) is
timed separately on a tiny data set. Peak memory is the peak process RSS above the RSS before
the call (sampled every 2 ms from /proc/self/statm), over the raw OHLC bytes.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from quantbot_assets.engine import (
    compute_paths,
    prepare_candles,
    search_frontier,
    simulate_policy,
)
from quantbot_assets.engine.calls import call_arrays
from quantbot_assets.engine.candles import prepare_for_kernels, resample_prepared
from quantbot_assets.engine.features import load_prepared, save_prepared
from quantbot_assets.engine.policy import encode_policy, parse_policy
from quantbot_assets.engine.replay import replay_kernel
from quantbot_assets.engine.truth import truth_kernel

MINUTE = 60_000
# Policies for the drill-down figures: levels close to p0, so that many 5m exit bars are
# ambiguous (a stop and a take-profit level both inside the bar).
DRILL_POLICIES: dict[str, dict[str, Any]] = {
    "tight fixed_stop": {"kind": "fixed_stop", "stop_loss_bps": 300, "take_profit_bps": 500},
    "tight ladder": {
        "kind": "ladder",
        "levels": [{"multiple": 1.03, "fraction": 0.5}, {"multiple": 1.08, "fraction": 0.5}],
        "stop_loss_bps": 300,
    },
    "tight combo": {
        "kind": "combo",
        "policies": [
            {"kind": "trailing_stop", "activation_bps": 200, "trail_bps": 300},
            {"kind": "time_stop", "max_hold_ms": 3_600_000, "take_profit_bps": 800},
        ],
    },
}
WINDOW_BARS = 2_880  # 48 h of 1m bars after each alert
PRE_BARS = 20  # bars before the alert (the store has history the engine must skip)
HORIZON_MS = 172_800_000

POLICIES: dict[str, dict[str, Any]] = {
    "fixed_stop": {"kind": "fixed_stop", "stop_loss_bps": 2000, "take_profit_bps": 10000},
    "time_stop": {"kind": "time_stop", "max_hold_ms": 24 * 3_600_000, "take_profit_bps": 20000},
    "trailing_stop": {
        "kind": "trailing_stop",
        "activation_bps": 5000,
        "trail_bps": 2000,
        "hard_stop_bps": 5000,
    },
    "ladder": {
        "kind": "ladder",
        "levels": [{"multiple": 2, "fraction": 0.5}, {"multiple": 4, "fraction": 0.5}],
        "stop_loss_bps": 5000,
    },
    "combo": {
        "kind": "combo",
        "policies": [
            {"kind": "trailing_stop", "activation_bps": 5000, "trail_bps": 2000},
            {"kind": "time_stop", "max_hold_ms": 12 * 3_600_000},
            {"kind": "fixed_stop", "stop_loss_bps": 5000, "take_profit_bps": 30000},
        ],
    },
}


# ---- data ------------------------------------------------------------------------------------


def generate(n_calls: int, seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Heavy-tailed 1m candles with pumps, rugs and gaps; one series and one call per mint."""
    rng = np.random.default_rng(seed)
    per = PRE_BARS + WINDOW_BARS
    n = n_calls * per
    ts = np.empty(n, np.int64)
    o = np.empty(n)
    h = np.empty(n)
    lo = np.empty(n)
    c = np.empty(n)
    v = np.empty(n)
    alert_ts = np.empty(n_calls, np.int64)
    start0 = 1_767_225_600_000  # 2026-01-01
    chunk = 1_000
    for a in range(0, n_calls, chunk):
        b = min(n_calls, a + chunk)
        m = b - a
        vol = np.exp(rng.normal(np.log(0.015), 0.5, size=(m, 1)))
        r = rng.standard_t(3, size=(m, per)) * vol
        # pumps: a ramp of x2..x20 over 10-60 minutes for half of the mints
        for i in np.flatnonzero(rng.random(m) < 0.5):
            at = int(rng.integers(PRE_BARS, per - 60))
            span = int(rng.integers(10, 60))
            r[i, at : at + span] += np.log(rng.uniform(2, 20)) / span
        # rugs: -80..-99 % in 1-3 bars for a fifth of them
        for i in np.flatnonzero(rng.random(m) < 0.2):
            at = int(rng.integers(PRE_BARS, per - 3))
            r[i, at : at + 2] += np.log(rng.uniform(0.01, 0.2)) / 2
        logc = np.log(rng.uniform(1e-6, 1e-3, size=(m, 1))) + np.cumsum(r, axis=1)
        close = np.exp(logc)
        opn = np.empty_like(close)
        opn[:, 0] = close[:, 0] * np.exp(-r[:, 0])
        opn[:, 1:] = close[:, :-1] * np.exp(rng.normal(0, 0.002, size=(m, per - 1)))
        wick = np.abs(rng.standard_t(3, size=(m, per))) * vol * 0.7
        high = np.maximum(opn, close) * np.exp(wick)
        low = np.minimum(opn, close) * np.exp(-np.abs(rng.standard_t(3, size=(m, per))) * vol * 0.7)
        # gaps: minutes without trades, mostly before the alert and spread over a day
        steps = np.full((m, per), MINUTE, np.int64)
        gap = rng.random((m, per)) < 0.002
        gap[:, PRE_BARS:] = False
        steps[gap] += rng.integers(1, 30, size=int(gap.sum())) * MINUTE
        starts = start0 + rng.integers(0, 30 * 1440, size=(m, 1)) * MINUTE
        t = starts + np.cumsum(steps, axis=1)
        sl = slice(a * per, b * per)
        ts[sl] = t.ravel()
        o[sl] = opn.ravel()
        h[sl] = high.ravel()
        lo[sl] = low.ravel()
        c[sl] = close.ravel()
        v[sl] = np.exp(rng.normal(6, 2, size=m * per))
        alert_ts[a:b] = t[:, PRE_BARS] - rng.integers(0, MINUTE, size=m)
    mints = np.array([f"mint{i:07d}pump" for i in range(n_calls)], dtype=object)
    codes = np.repeat(np.arange(n_calls, dtype=np.int32), per)
    candles = pd.DataFrame(
        {
            "chain": pd.Categorical.from_codes(np.zeros(n, np.int8), categories=["solana"]),
            "mint": pd.Categorical.from_codes(codes, categories=mints),
            "interval": pd.Categorical.from_codes(np.zeros(n, np.int8), categories=["1m"]),
            "ts_ms": ts,
            "open": o,
            "high": h,
            "low": lo,
            "close": c,
            "volume": v,
        },
        copy=False,
    )
    callers = np.array([f"caller{i:03d}" for i in range(200)], dtype=object)
    alerts = pd.DataFrame(
        {
            "call_id": np.array([f"call{i:07d}" for i in range(n_calls)], dtype=object),
            "mint": mints,
            "caller_name": callers[rng.integers(0, len(callers), size=n_calls)],
            "chain": "solana",
            "alert_ts_ms": alert_ts,
        }
    )
    return candles, alerts


# ---- measuring -------------------------------------------------------------------------------


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRss:
    """Peak RSS above the starting RSS while the block runs (sampled every 2 ms)."""

    def __enter__(self) -> PeakRss:
        self.base = _rss()
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss())
            time.sleep(0.002)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())

    @property
    def extra(self) -> int:
        return self.peak - self.base


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, Any, int]:
    """(best seconds, last result, peak extra RSS bytes over all runs)."""
    best = float("inf")
    result: Any = None
    peak = 0
    for _ in range(repeat):
        result = None
        with PeakRss() as mem:
            t = time.perf_counter()
            result = fn()
            best = min(best, time.perf_counter() - t)
        peak = max(peak, mem.extra)
    return best, result, peak


SQL_TRUTH = """
WITH w AS (
    SELECT a.call_id, a.alert_ts_ms, c.ts_ms, c.open, c.high, c.low
    FROM alerts a
    JOIN candles c
      ON c.chain = a.chain AND c.mint = a.mint AND c.interval = $interval
     AND c.ts_ms >= a.alert_ts_ms + $delay AND c.ts_ms < a.alert_ts_ms + $horizon
),
e AS (SELECT call_id, min(ts_ms) AS t0, arg_min(open, ts_ms) AS p0 FROM w GROUP BY call_id),
j AS (SELECT w.*, e.t0, e.p0 FROM w JOIN e USING (call_id)),
g AS (
    SELECT call_id, any_value(alert_ts_ms) AS alert_ts_ms, any_value(t0) AS t0_ms,
           any_value(p0) AS p0,
           min(ts_ms) FILTER (WHERE high >= 2 * p0) AS t_2x_ms,
           min(ts_ms) FILTER (WHERE high >= 3 * p0) AS t_3x_ms,
           min(ts_ms) FILTER (WHERE high >= 4 * p0) AS t_4x_ms,
           max(high) / any_value(p0) AS peak_multiple,
           arg_max(ts_ms, high) AS peak_ts_ms,
           (min(low) / any_value(p0) - 1) * 10000 AS dd_bps,
           min(ts_ms) FILTER (WHERE high >= p0 * (1 + $move) OR low <= p0 * (1 - $move))
               - any_value(alert_ts_ms) AS alert_to_activity_ms,
           count(*) AS bars
    FROM j GROUP BY call_id
)
SELECT g.*, (min(j.low) FILTER (WHERE j.ts_ms <= g.t_2x_ms) / any_value(g.p0) - 1) * 10000 AS dd_to_2x_bps
FROM g JOIN j USING (call_id)
GROUP BY ALL
"""


def sql_truth(candles: pd.DataFrame, alerts: pd.DataFrame) -> pd.DataFrame:
    con = duckdb.connect()
    con.execute("SET threads = 2")
    con.register("candles", candles)
    con.register("alerts", alerts)
    params = {"interval": "1m", "delay": 0, "horizon": HORIZON_MS, "move": 0.1}
    out = con.execute(SQL_TRUTH, params).df()
    con.close()
    return out


WARM_UP = """
import sys
sys.path.insert(0, {bench_dir!r})
from engine_bench import warm_up
warm_up()
"""


def warm_up() -> None:
    """Every public function once on tiny data (compiles or loads every kernel)."""
    # 200 mints: categorical codes are int16 as in the full data (numba compiles per dtype)
    tiny_c, tiny_a = generate(200, seed=1)
    tiny_c = tiny_c[tiny_c["ts_ms"] < tiny_a["alert_ts_ms"].min() + 86_400_000 * 40]
    for name in POLICIES:
        simulate_policy(tiny_a, tiny_c, POLICIES[name], policy_id=name)
    compute_paths(tiny_a, tiny_c)
    prepare_candles(tiny_c)
    search_frontier(tiny_a, tiny_c, min_trades=1)
    minute, _ = prepare_candles(tiny_c)
    five = resample_prepared(minute, "5m")
    for name in POLICIES:
        simulate_policy(tiny_a, five, POLICIES[name], policy_id=name, interval="5m", fine=minute)
    search_frontier(tiny_a, five, min_trades=1, interval="5m", fine=minute)


def cold_compile_seconds() -> float:
    """Wall time of the warm-up in a fresh process with an empty numba cache, minus the same
    process with the cache filled (imports and Python work cancel out)."""
    code = WARM_UP.format(bench_dir=os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        times = []
        for _ in range(2):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], env=env, check=True)
            times.append(time.perf_counter() - t)
    return times[0] - times[1]


PREP_TARGET = 20  # M input rows/s for prepare_candles at 1m and 5m (issue 8)
JAN_MS = 1_704_067_200_000  # 2024-01-01, the sample data's month
DAY_MS = 86_400_000


def _as_loaded(candles: pd.DataFrame) -> pd.DataFrame:
    """The candle frame as `load_candles` returns it: chain/mint/interval as pandas `str`
    columns, sorted by (chain, mint, ts_ms) with duplicates kept (here every 1000th row twice)."""
    dup = np.sort(np.concatenate([np.arange(len(candles)), np.arange(0, len(candles), 1000)]))
    out = candles.iloc[dup].reset_index(drop=True)
    for col in ("chain", "mint", "interval"):
        out[col] = out[col].astype(str).astype("str")
    return out


def sample_figures(sample: str, repeat: int, rate: Callable[..., float]) -> None:
    """Scan (load_candles, January 2024 at 1m, 48 h horizon), prepare on what it returns, and
    the features file (save_prepared / load_prepared) against scan + prepare."""
    from pathlib import Path

    from quantbot_assets.engine.windows import candle_load_range
    from quantbot_assets.sources.access import calls_source_from_path, candle_source_from_path
    from quantbot_assets.sources.calls import load_calls
    from quantbot_assets.sources.candles import load_candles

    root = Path(sample)
    if not (root / "alerts.duckdb").exists() or not (root / "candles").exists():
        print(f"no sample data in {root} (quantbot sample-data): scan/features figures skipped")
        return
    calls = load_calls(calls_source_from_path(root / "alerts.duckdb"), JAN_MS, JAN_MS + 31 * DAY_MS)
    alerts = calls.calls
    keys = alerts[["chain", "mint"]].drop_duplicates()
    span = candle_load_range(
        alerts["alert_ts_ms"].to_numpy(), interval_ms=60_000, horizon_ms=HORIZON_MS
    )
    assert span is not None
    start, end = span
    source = candle_source_from_path(root / "candles")
    scan_s, loaded, _ = best_of(lambda: load_candles(source, keys, start, end), 1)
    n = len(loaded)
    print(
        f"sample: {len(alerts):,} January calls, load_candles returned {n:,} 1m rows in {scan_s:.1f} s"
    )
    rate("scan: load_candles January 1m (str columns)", scan_s, None, n, "Mrows/s")
    cat_s, cat_loaded, _ = best_of(
        lambda: load_candles(source, keys, start, end, categorical=True), 1
    )
    rate("scan: load_candles January 1m, categorical=True", cat_s, None, n, "Mrows/s")
    for iv in ("1m", "5m"):
        # What the truth step prepares (it loads categorical columns), then str columns.
        cs, _, _ = best_of(lambda iv=iv: prepare_candles(cat_loaded, iv), repeat)
        rate(
            f"prepare_candles {iv} on the January scan (categorical, as runs load it)",
            cs,
            PREP_TARGET,
            n,
            "Mrows/s",
        )
        s, (prepared, _), _ = best_of(lambda iv=iv: prepare_candles(loaded, iv), repeat)
        rate(
            f"prepare_candles {iv} on the January scan (str columns)", s, PREP_TARGET, n, "Mrows/s"
        )
        with tempfile.TemporaryDirectory() as tmp:
            for comp in (None, "lz4"):
                path = Path(tmp) / f"features-{iv}-{comp}.arrow"
                save_prepared(prepared, path, compression=comp)
                mb = path.stat().st_size / 1e6

                def load_and_touch(path: Path = path) -> Any:
                    p = load_prepared(path)
                    return [float(np.nansum(a)) for a in (p.open, p.high, p.low, p.close)]

                ls, _, _ = best_of(load_and_touch, repeat)
                rate(
                    f"features load {iv} ({comp or 'uncompressed'}, {mb:.0f} MB) + read OHLC",
                    ls,
                    None,
                    n,
                    "Mrows/s",
                )
        print(
            f"  {iv}: scan + prepare {scan_s + s:.2f} s vs features load {ls:.2f} s (lz4, "
            f"pages read) = {(scan_s + s) / ls:.0f}x"
        )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--calls", type=int, default=20_000, help="calls (one 2,900-bar series each)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per timing (best is kept)")
    ap.add_argument("--no-sql", action="store_true", help="skip the DuckDB comparison")
    ap.add_argument(
        "--sample",
        default="data",
        help="sample data directory (quantbot sample-data) for the scan/prepare/features "
        "figures on January 2024; skipped when absent",
    )
    args = ap.parse_args()

    cold_s = cold_compile_seconds()
    t = time.perf_counter()
    warm_up()
    grid25 = {
        f"fs{sl}-{tp}": {"kind": "fixed_stop", "stop_loss_bps": sl, "take_profit_bps": tp}
        for sl in (300, 500, 1000, 2000, 3000)
        for tp in (3000, 5000, 10000, 20000, 40000)
    }
    grid_tight = {
        f"fs{sl}-{tp}": {"kind": "fixed_stop", "stop_loss_bps": sl, "take_profit_bps": tp}
        for sl in (100, 200, 300, 500, 1000)
        for tp in (100, 200, 300, 500, 1000)
    }
    jit_s = time.perf_counter() - t

    t = time.perf_counter()
    candles, alerts = generate(args.calls)
    gen_s = time.perf_counter() - t
    bars = args.calls * WINDOW_BARS
    raw_bytes = 4 * 8 * len(candles)
    print(
        f"data: {args.calls:,} calls, {len(candles):,} candle rows, {bars:,} bars in windows, "
        f"raw OHLC {raw_bytes / 1e9:.2f} GB (generated in {gen_s:.1f} s)"
    )
    print(
        f"JIT compile of every kernel, empty numba cache: {cold_s:.1f} s; "
        f"with the on-disk cache (cache=True): {jit_s:.2f} s (excluded from all figures)"
    )
    print(
        f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores"
    )

    rows: list[tuple[str, float, float | None, str, int | None]] = []

    def rate(
        label: str,
        seconds: float,
        target: float | None,
        unit_count: int = bars,
        unit: str = "Mbars/s",
        mem: int | None = None,
    ) -> float:
        r = unit_count / seconds / 1e6
        rows.append((label, r, target, unit, mem))
        return r

    ohlc = [candles[k].to_numpy() for k in ("open", "high", "low", "close")]
    floor_s, _, _ = best_of(lambda: [float(a.sum()) for a in ohlc], args.repeat)
    rate("memory floor: numpy sum of O,H,L,C", floor_s, None)

    prepared, issues = prepare_candles(candles)
    assert len(issues) == 0, issues.head()
    prep_s, _, prep_mem = best_of(lambda: prepare_candles(candles), args.repeat)
    rate("prepare_candles (validate + offsets)", prep_s, None, mem=prep_mem)
    rate("prepare_candles 1m, input rows", prep_s, PREP_TARGET, len(candles), "Mrows/s")

    struct_s, _, _ = best_of(lambda: prepare_for_kernels(candles, "1m"), args.repeat)
    rate("  structure only (what the API functions run)", struct_s, None)

    n_rows = len(candles)
    p5_s, _, _ = best_of(lambda: prepare_candles(candles, "5m"), args.repeat)
    rate("prepare_candles 5m (resampled from 1m), input rows", p5_s, PREP_TARGET, n_rows, "Mrows/s")
    # the same rows as load_candles returns them (string columns) with 0.1 % duplicate rows
    messy = _as_loaded(candles)
    for iv in ("1m", "5m"):
        m_s, _, _ = best_of(lambda iv=iv: prepare_candles(messy, iv), args.repeat)
        rate(
            f"prepare_candles {iv}, str columns + duplicates",
            m_s,
            PREP_TARGET,
            len(messy),
            "Mrows/s",
        )
    sample_figures(args.sample, args.repeat, rate)

    api_truth_s, (paths, excl), truth_mem = best_of(
        lambda: compute_paths(alerts, candles), args.repeat
    )
    assert len(excl) == 0 and int(paths["bars"].sum()) == bars, (len(excl), paths["bars"].sum())
    rate("API compute_paths (DataFrames in)", api_truth_s, 100, mem=truth_mem)

    series, alert_ts = call_arrays(alerts, prepared)
    kargs = (prepared.ts, prepared.open, prepared.high, prepared.low)

    def kernel_truth() -> Any:
        return truth_kernel(
            *kargs, prepared.offsets, series, alert_ts, np.int64(0), np.int64(HORIZON_MS), 0.1
        )

    k_truth_s, _, _ = best_of(kernel_truth, args.repeat)
    rate("kernel truth (prepared arrays)", k_truth_s, 250)

    for name, pol in POLICIES.items():
        s, trades, mem = best_of(
            lambda pol=pol, name=name: simulate_policy(alerts, candles, pol, policy_id=name),
            args.repeat,
        )
        assert len(trades) == args.calls
        rate(f"API simulate_policy {name}", s, 150 if name == "fixed_stop" else 75, mem=mem)

    enc = encode_policy(parse_policy(POLICIES["fixed_stop"]))

    def kernel_fixed() -> Any:
        return replay_kernel(
            *kargs,
            prepared.close,
            prepared.offsets,
            series,
            alert_ts,
            np.int64(0),
            np.int64(HORIZON_MS),
            enc,
            0.0,
            0.0,
        )

    k_fixed_s, _, _ = best_of(kernel_fixed, args.repeat)
    rate("kernel fixed_stop (prepared arrays)", k_fixed_s, 500)

    evals = 25 * args.calls
    g_s, _, g_mem = best_of(lambda: search_frontier(alerts, candles, grid25), args.repeat)
    rate("grid 25 fixed_stop, DataFrames in", g_s, None, evals, "M policy-evals/s", g_mem)
    gp_s, _, _ = best_of(lambda: search_frontier(alerts, prepared, grid25), args.repeat)
    rate("grid 25 fixed_stop, PreparedCandles in", gp_s, 2, evals, "M policy-evals/s")
    dg_s, dfr, _ = best_of(lambda: search_frontier(alerts, prepared), 1)
    n_default = dfr["policy_id"].nunique()
    rate(
        f"default grid ({n_default} policies, all kinds), PreparedCandles in",
        dg_s,
        None,
        n_default * args.calls,
        "M policy-evals/s",
    )

    # Drill-down: a 5m run (bars resampled from the 1m store) with and without the 1m bars;
    # only the exit bars that are ambiguous at 5m are read at 1m.
    # Tight levels so that many 5m exit bars hold both a stop and a take-profit level.
    five = resample_prepared(prepared, "5m")
    drill_ratios = []
    for name, pol in DRILL_POLICIES.items():
        plain_s, _, _ = best_of(
            lambda pol=pol: simulate_policy(alerts, five, pol, policy_id="d", interval="5m"),
            args.repeat,
        )
        drill_s, drilled, _ = best_of(
            lambda pol=pol: simulate_policy(
                alerts, five, pol, policy_id="d", interval="5m", fine=prepared
            ),
            args.repeat,
        )
        info = drilled.attrs["drilldown"]
        rate(f"API simulate_policy {name} at 5m, no drill-down", plain_s, None)
        rate(f"API simulate_policy {name} at 5m, 1m drill-down", drill_s, None)
        drill_ratios.append((name, drill_s / plain_s, info))
    gd_plain, _, _ = best_of(
        lambda: search_frontier(alerts, five, grid_tight, interval="5m"), args.repeat
    )
    gd_drill, gfr, _ = best_of(
        lambda: search_frontier(alerts, five, grid_tight, interval="5m", fine=prepared),
        args.repeat,
    )
    rate("grid 25 tight fixed_stop at 5m, no drill-down", gd_plain, None, evals, "M policy-evals/s")
    rate("grid 25 tight fixed_stop at 5m, 1m drill-down", gd_drill, None, evals, "M policy-evals/s")
    drill_ratios.append(("grid 25 tight fixed_stop", gd_drill / gd_plain, gfr.attrs["drilldown"]))

    # ru_maxrss: the whole process so far (input DataFrames, data generation, every engine call)
    engine_max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    frame_bytes = int(candles.memory_usage(deep=False).sum())
    sql_s = None
    if not args.no_sql:
        sql_s, sql_out, _ = best_of(lambda: sql_truth(candles, alerts), 1)
        assert len(sql_out) == args.calls
        check = paths.set_index("call_id")
        s2 = sql_out.set_index("call_id").loc[check.index]
        assert (
            np.allclose(s2["peak_multiple"], check["peak_multiple"])
            and (s2["bars"].to_numpy() == check["bars"].to_numpy()).all()
        )
        rate("DuckDB SQL truth layer (one query)", sql_s, None)

    print()
    print(f"{'figure':<62} {'rate':>10} {'unit':<18} {'target':>8} {'peak RSS':>9}  result")
    for label, r, target, unit, mem in rows:
        verdict = "" if target is None else ("PASS" if r >= target else "FAIL")
        tgt = "" if target is None else f">= {target:g}"
        m = "" if mem is None else f"{mem / raw_bytes:.2f}x"
        print(f"{label:<62} {r:>10.1f} {unit:<18} {tgt:>8} {m:>9}  {verdict}")
    print()
    checks = [
        (
            "kernel truth within 3x of the memory floor",
            k_truth_s <= 3 * floor_s,
            f"{k_truth_s / floor_s:.2f}x floor time",
        ),
        (
            "peak extra RSS of every API call <= 2.5x raw OHLC bytes",
            max(m for *_, m in rows if m is not None) <= 2.5 * raw_bytes,
            f"max {max(m for *_, m in rows if m is not None) / raw_bytes:.2f}x",
        ),
    ]
    for name, ratio, info in drill_ratios:
        checks.append(
            (
                f"5m drill-down {name} <= 1.5x the time without",
                ratio <= 1.5,
                f"{ratio:.2f}x ({info['resolved_bars']}/{info['ambiguous_bars']} resolved)",
            )
        )
    if sql_s is not None:
        checks.append(
            (
                "API truth at least 10x faster than DuckDB SQL",
                sql_s >= 10 * api_truth_s,
                f"{sql_s / api_truth_s:.1f}x",
            )
        )
    print(
        f"process peak RSS before the DuckDB step: {engine_max_rss / 1e9:.2f} GB "
        f"({engine_max_rss / raw_bytes:.2f}x raw OHLC; the candle DataFrame alone is "
        f"{frame_bytes / 1e9:.2f} GB = {frame_bytes / raw_bytes:.2f}x)"
    )
    for label, ok, detail in checks:
        print(f"{label:<62} {detail:>29}  {'PASS' if ok else 'FAIL'}")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
