"""A deterministic month of memecoin calls and 1-minute candles for demos and tests.

    data_dir/alerts.duckdb                       table `alerts` (docs/compatibility.md)
    data_dir/candles/date=YYYY-MM-DD/part-0.parquet   1m bars, by the bar's UTC date
    data_dir/.sample_data.json                   marker: generator version + parameters

Calls come from callers of clearly different quality (the share of their
first calls on tokens that go on to pump), some mints are called by several
callers, a few calls are malformed on purpose (duplicate and conflicting
call ids, a null mint, an empty caller) and a few name mints with no candles
at all. Each called mint has one price series from 1 h before its first call
to 48 h after its last: heavy-tailed minute returns on top of a fate (pump
to 2x-50x, rug toward zero, slow bleed, chop), missing minutes, and a few
malformed bars (NaN or zero prices, high < low, a duplicated bar) so every
error path downstream has something to find.

Everything is vectorised numpy per day of first calls; one random generator
per (seed, purpose, day) keeps the output byte-identical for a seed.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from quantbot_assets.sources.access import CANDLE_SCHEMA

# Bump when the generator's output changes for the same parameters, so
# ensure_sample_data regenerates stale data.
GENERATOR_VERSION = "1"

ALERTS_FILE = "alerts.duckdb"
CANDLES_DIR = "candles"
MARKER_FILE = ".sample_data.json"
LOCK_FILE = ".sample_data.lock"

CHAIN = "solana"
MINUTE_MS = 60_000
DAY_MS = 86_400_000
PRE_ALERT_MINUTES = 60
HORIZON_MINUTES = 48 * 60
RECALL_SHARE = 0.18  # share of calls on a mint another caller called in the last 12 h
RECALL_LOOKBACK_MS = 12 * 3_600_000
NO_CANDLE_SHARE = 0.004  # called mints that never traded on an indexed venue
ROW_GROUP_ROWS = 16_384  # small enough that a mint filter skips most of a file

# Token fates, drawn when a token is first called, with odds set by that caller's skill.
PUMP, RUG, BLEED, CHOP = 0, 1, 2, 3

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_HANDLE_HEADS = (
    "alpha", "based", "moon", "degen", "sol", "whale", "gem", "pump", "ape", "chad",
    "giga", "early", "rekt", "wagmi", "snipe", "bonk", "jeet", "diamond", "turbo", "lunar",
)  # fmt: skip
_HANDLE_TAILS = (
    "calls", "hunter", "sniper", "oracle", "alpha", "signals", "gems", "labs", "whale",
    "trader", "scout", "wizard", "king", "bot", "plays", "vault", "desk", "radar",
)  # fmt: skip


@dataclass(frozen=True)
class SampleData:
    alerts_db: Path
    candles_dir: Path


@dataclass(frozen=True)
class _Calls:
    """Valid calls in time order, plus the token each one names."""

    ts_ms: np.ndarray  # int64
    caller: np.ndarray  # int index into caller names
    token: np.ndarray  # int index into tokens


@dataclass(frozen=True)
class _Tokens:
    """One row per called mint, in order of first call."""

    mint: list[str]
    first_ms: np.ndarray  # first call
    last_ms: np.ndarray  # last call
    fate: np.ndarray
    has_candles: np.ndarray  # bool


def _params(
    seed: int, start: date, days: int, calls_per_day: int, n_callers: int
) -> dict[str, object]:
    if days < 1 or calls_per_day < 1 or n_callers < 2:
        raise ValueError("days and calls_per_day must be >= 1 and n_callers >= 2")
    return {
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "start": start.isoformat(),
        "days": days,
        "calls_per_day": calls_per_day,
        "n_callers": n_callers,
    }


def _rng(seed: int, purpose: int, part: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, purpose, part])


def _base58(raw: bytes) -> str:
    n = int.from_bytes(raw, "big")
    out = []
    while n:
        n, r = divmod(n, 58)
        out.append(_B58[r])
    leading = len(raw) - len(raw.lstrip(b"\0"))
    return "1" * leading + "".join(reversed(out))


def _mints(rng: np.random.Generator, n: int) -> list[str]:
    """Solana-style mints: base58 of 32 random bytes; many pump.fun ones end in 'pump'."""
    raw = rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
    vanity = rng.random(n) < 0.4
    mints = []
    for row, pump in zip(raw, vanity, strict=True):
        text = _base58(row.tobytes())
        mints.append(text[:-4] + "pump" if pump else text)
    return mints


def _caller_names(rng: np.random.Generator, n: int) -> list[str]:
    pairs = [(h, t) for h in _HANDLE_HEADS for t in _HANDLE_TAILS if h != t]
    picked = rng.choice(len(pairs), size=n, replace=n > len(pairs))
    names = []
    for i, k in enumerate(picked):
        head, tail = pairs[int(k)]
        names.append(f"{head}_{tail}" if n <= len(pairs) else f"{head}_{tail}_{i}")
    return names


def _caller_skill(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(probability that a caller's fresh token pumps, activity weight) per caller."""
    skill = rng.permutation(np.linspace(0.05, 0.55, n))
    activity = rng.pareto(1.5, n) + 0.3  # a few loud callers, a long quiet tail
    return skill, activity / activity.sum()


def _make_calls(
    seed: int, start_ms: int, days: int, calls_per_day: int, skill: np.ndarray, weights: np.ndarray
) -> tuple[_Calls, _Tokens]:
    rng = _rng(seed, 1)
    n = days * calls_per_day
    day_of = np.repeat(np.arange(days, dtype=np.int64), calls_per_day)
    ts = start_ms + day_of * DAY_MS + rng.integers(0, DAY_MS, size=n)
    ts.sort()
    caller = rng.choice(len(weights), size=n, p=weights)
    recall = rng.random(n) < RECALL_SHARE
    pick = rng.random(n)
    # Walk the calls in time order: a re-call names a token first called in
    # the last 12 h, otherwise the call founds a new token. One step per call.
    token = np.empty(n, dtype=np.int64)
    first_ms: list[int] = []
    founder: list[int] = []
    lo = 0
    for i in range(n):
        while lo < len(first_ms) and first_ms[lo] < ts[i] - RECALL_LOOKBACK_MS:
            lo += 1
        if recall[i] and lo < len(first_ms):
            token[i] = lo + int(pick[i] * (len(first_ms) - lo))
        else:
            token[i] = len(first_ms)
            first_ms.append(int(ts[i]))
            founder.append(int(caller[i]))
    n_tokens = len(first_ms)
    last_ms = np.full(n_tokens, -1, dtype=np.int64)
    np.maximum.at(last_ms, token, ts)
    # A fresh token pumps with its founder's skill as odds; the rest: 35 % rugs, 45 % bleeds, 20 % chop.
    p_pump = skill[np.asarray(founder)]
    u = rng.random(n_tokens)
    rest = (u - p_pump) / (1.0 - p_pump)
    fate = np.where(u < p_pump, PUMP, np.where(rest < 0.35, RUG, np.where(rest < 0.8, BLEED, CHOP)))
    has_candles = rng.random(n_tokens) >= NO_CANDLE_SHARE
    has_candles[rng.choice(n_tokens, size=min(2, n_tokens), replace=False)] = False
    tokens = _Tokens(
        mint=_mints(_rng(seed, 2), n_tokens),
        first_ms=np.asarray(first_ms, dtype=np.int64),
        last_ms=last_ms,
        fate=fate.astype(np.int8),
        has_candles=has_candles,
    )
    return _Calls(ts_ms=ts, caller=caller, token=token), tokens


def _iso_ms(ts_ms: np.ndarray) -> list[str]:
    text = np.datetime_as_string(ts_ms.astype("datetime64[ms]"), unit="ms")
    return [f"{t}Z" for t in text]


def _call_ids(rng: np.random.Generator, n: int) -> list[str]:
    """UUID4-formatted ids from the seeded generator (uuid.uuid4 is not reproducible)."""
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    out = []
    for row in raw:
        h = row.tobytes().hex()
        out.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return out


def _alerts_table(seed: int, calls: _Calls, tokens: _Tokens, names: list[str]) -> pa.Table:
    """The alerts rows, valid ones plus a few malformed ones on purpose."""
    rng = _rng(seed, 3)
    n = len(calls.ts_ms)
    call_id = _call_ids(rng, n)
    mint: list[str | None] = [tokens.mint[int(k)] for k in calls.token]
    caller = [names[int(c)] for c in calls.caller]
    ts = [int(t) for t in calls.ts_ms]
    # The bot stores a row a moment after the message it reacts to.
    created = _iso_ms(calls.ts_ms + rng.integers(40, 4_000, size=n))
    # Malformed rows, at random places: two identical re-deliveries of a call,
    # one call id reused for a different call, a null mint, an empty caller.
    bad = [int(i) for i in rng.choice(n, size=5, replace=False)]
    call_id += [call_id[bad[0]], call_id[bad[0]], call_id[bad[1]]]
    extra = [bad[0], bad[0], bad[2]]  # the third is another call under bad[1]'s id
    mint += [mint[i] for i in extra]
    caller += [caller[i] for i in extra]
    ts += [ts[i] for i in extra]
    created += [created[i] for i in extra]
    mint[bad[3]] = None
    caller[bad[4]] = ""
    table = pa.table(
        {
            "call_id": pa.array(call_id, pa.string()),
            "mint": pa.array(mint, pa.string()),
            "caller_name": pa.array(caller, pa.string()),
            "chain": pa.array([CHAIN] * len(ts), pa.string()),
            "alert_ts_ms": pa.array(ts, pa.int64()),
            "created_at": pa.array(created, pa.string()),
        }
    )
    order = np.lexsort((np.arange(len(table)), table.column("alert_ts_ms").to_numpy()))
    return table.take(pa.array(order))


@dataclass(frozen=True)
class _Bars:
    token: np.ndarray  # int64 index into tokens
    ts_ms: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def take(self, idx: np.ndarray) -> _Bars:
        return _Bars(*(getattr(self, f)[idx] for f in _BAR_FIELDS))


_BAR_FIELDS = ("token", "ts_ms", "open", "high", "low", "close", "volume")


def _concat(parts: list[_Bars]) -> _Bars:
    return _Bars(*(np.concatenate([getattr(p, f) for p in parts]) for f in _BAR_FIELDS))


def _bars_for(tokens: _Tokens, ids: np.ndarray, rng: np.random.Generator, force_bad: bool) -> _Bars:
    """Minute bars for the tokens `ids`, all series at once (no per-bar Python)."""
    k = len(ids)
    first_min = tokens.first_ms[ids] // MINUTE_MS
    last_min = tokens.last_ms[ids] // MINUTE_MS
    start_min = first_min - PRE_ALERT_MINUTES
    lengths = (last_min - first_min) + PRE_ALERT_MINUTES + HORIZON_MINUTES + 1
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    n = int(lengths.sum())
    seg = np.repeat(np.arange(k), lengths)
    step = np.arange(n) - offsets[seg]
    x = (step - PRE_ALERT_MINUTES).astype(np.float64)  # minutes since the first call

    # Per-token parameters.
    fate = tokens.fate[ids]
    p_start = 10.0 ** rng.uniform(-7.0, -3.0, k)
    sigma = rng.uniform(0.002, 0.009, k)
    run_up = rng.uniform(0.0, 0.5, k)  # callers tend to post after a first move
    gap_p = rng.beta(0.8, 8.0, k)
    vol_base = 10.0 ** rng.uniform(1.5, 4.5, k)
    peak = np.clip(2.0 * rng.random(k) ** -0.9, 2.0, 50.0)  # pumps: 2x .. 50x, heavy tail
    delay = rng.uniform(0.0, 30.0, k)
    rise = np.clip(rng.lognormal(np.log(120.0), 1.0, k), 3.0, 2_000.0)
    shape = rng.uniform(0.6, 2.0, k)
    decay = rng.lognormal(np.log(300.0), 0.8, k)
    settle = rng.uniform(-1.0, 0.5, k)  # final level as a power of the peak
    bump = np.log(rng.uniform(1.0, 1.8, k))  # rugs: small bump, then the pull
    rug_at = np.clip(rng.lognormal(np.log(60.0), 1.0, k), 2.0, 2_500.0)
    rug_len = rng.integers(1, 4, k).astype(np.float64)
    rug_drop = np.log(rng.uniform(50.0, 20_000.0, k))
    bleed = -np.log(rng.uniform(1.5, 8.0, k))

    trend = run_up[seg] * np.minimum(x, 0.0) / PRE_ALERT_MINUTES
    fate_e = fate[seg]
    for kind in (PUMP, RUG, BLEED):
        i = np.flatnonzero(fate_e == kind)
        s, xi = seg[i], x[i]
        if kind == PUMP:
            y = xi - delay[s]
            lm = np.log(peak[s])
            up = lm * np.clip(y / rise[s], 0.0, 1.0) ** shape[s]
            fall = (lm - settle[s] * lm) * (1.0 - np.exp(-np.maximum(y - rise[s], 0.0) / decay[s]))
            trend[i] += up - fall
        elif kind == RUG:
            up = bump[s] * np.clip(xi / rug_at[s], 0.0, 1.0)
            trend[i] += up - rug_drop[s] * np.clip((xi - rug_at[s]) / rug_len[s], 0.0, 1.0)
        else:
            trend[i] += bleed[s] * np.clip(xi / HORIZON_MINUTES, 0.0, 1.0)

    # Heavy-tailed minute returns (Student t, 3 dof), one walk per token.
    eps = np.clip(rng.standard_t(3.0, n) / np.sqrt(3.0), -25.0, 25.0) * sigma[seg]
    walk = np.cumsum(eps)
    walk -= np.repeat(walk[offsets] - eps[offsets], lengths)
    close = p_start[seg] * np.exp(trend + walk)
    prev = np.empty(n)
    prev[1:] = close[:-1]
    prev[offsets] = close[offsets] * np.exp(-eps[offsets])
    open_ = prev * np.exp(rng.normal(0.0, 0.1, n) * sigma[seg])
    high = np.maximum(open_, close) * np.exp(rng.exponential(0.8, n) * sigma[seg])
    low = np.minimum(open_, close) * np.exp(-rng.exponential(0.8, n) * sigma[seg])
    move = np.abs(np.log(close / open_))
    dead = (fate_e == RUG) & (x > rug_at[seg] + rug_len[seg])
    volume = vol_base[seg] * rng.lognormal(0.0, 0.8, n) * (1.0 + 30.0 * move)
    volume *= np.where(dead, 0.02, 1.0) * np.where(x < 0, 0.3, 1.0)

    # Minutes without trades: a per-token rate, and most minutes once a token is rugged.
    keep = rng.random(n) >= np.where(dead, 0.85, gap_p[seg])
    bars = _Bars(ids[seg], (start_min[seg] + step) * MINUTE_MS, open_, high, low, close, volume)
    bars = bars.take(np.flatnonzero(keep))
    return _inject_bad_bars(bars, rng, force_bad)


def _inject_bad_bars(bars: _Bars, rng: np.random.Generator, force: bool) -> _Bars:
    """A few malformed bars: NaN close, zero open, high < low, a duplicated minute."""
    m = len(bars.ts_ms)
    if m == 0:
        return bars
    counts = rng.poisson(0.3, 4) + (1 if force else 0)
    where = [rng.choice(m, size=c) for c in counts]
    bars.close[where[0]] = np.nan
    bars.open[where[1]] = 0.0
    hi = bars.high[where[2]].copy()
    bars.high[where[2]] = bars.low[where[2]]
    bars.low[where[2]] = hi
    dup = bars.take(where[3])
    dup.close[:] *= 1.01  # a re-sent bar that disagrees with the first copy
    return _concat([bars, dup])


# Byte-stream-split floats and delta-coded times compress a third better under
# zstd than dictionary-tried floats, and read faster.
_ENCODINGS = {
    "ts_ms": "DELTA_BINARY_PACKED",
    **dict.fromkeys(("open", "high", "low", "close", "volume"), "BYTE_STREAM_SPLIT"),
}


def _write_day(bars: _Bars, day: int, out_dir: Path, mints: pa.Array, rank: np.ndarray) -> int:
    order = np.lexsort((bars.ts_ms, rank[bars.token]))  # stable: a duplicate follows its original
    bars = bars.take(order)
    n = len(order)
    zeros = np.zeros(n, dtype=np.int64)
    table = pa.table(
        [
            pa.array([CHAIN]).take(zeros),
            mints.take(pa.array(bars.token)),
            pa.array(["1m"]).take(zeros),
            pa.array(bars.ts_ms),
            pa.array(bars.open),
            pa.array(bars.high),
            pa.array(bars.low),
            pa.array(bars.close),
            pa.array(bars.volume),
        ],
        schema=CANDLE_SCHEMA,
    )
    day_dir = out_dir / f"date={(date(1970, 1, 1) + timedelta(days=day)).isoformat()}"
    day_dir.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        table,
        day_dir / "part-0.parquet",
        compression="zstd",
        row_group_size=ROW_GROUP_ROWS,
        use_dictionary=["chain", "mint", "interval"],
        column_encoding=_ENCODINGS,
    )
    return n


def _write_candles(seed: int, tokens: _Tokens, start_ms: int, days: int, out_dir: Path) -> int:
    """Generate bars day by day (of first call) and write each date once it is complete.

    A writer thread compresses finished dates while the next day's bars are
    generated (numpy and Parquet both release the GIL for the heavy parts).
    """
    mints = pa.array(tokens.mint, pa.string())
    rank = np.empty(len(tokens.mint), dtype=np.int64)
    rank[np.argsort(np.asarray(tokens.mint))] = np.arange(len(tokens.mint))
    call_day = (tokens.first_ms - start_ms) // DAY_MS
    pending: dict[int, list[_Bars]] = {}
    first_date = start_ms // DAY_MS
    with ThreadPoolExecutor(max_workers=1) as writer:
        writes: list[Future[int]] = []
        for d in range(days + 1):
            ids = np.flatnonzero((call_day == d) & tokens.has_candles)  # empty when d == days
            if len(ids):
                bars = _bars_for(tokens, ids, _rng(seed, 4, d), force_bad=d == 0)
                by_day = np.argsort(bars.ts_ms // DAY_MS, kind="stable")
                bars = bars.take(by_day)
                days_of = bars.ts_ms // DAY_MS
                cuts = np.flatnonzero(np.diff(days_of)) + 1
                for part in np.split(np.arange(len(days_of)), cuts):
                    pending.setdefault(int(days_of[part[0]]), []).append(bars.take(part))
            # Tokens first called tomorrow start 1 h before, so dates before today are
            # complete; after the last day everything is.
            for day in sorted(k for k in pending if k < first_date + d or d == days):
                parts = pending.pop(day)
                writes.append(writer.submit(_write_day, _concat(parts), day, out_dir, mints, rank))
        return sum(w.result() for w in writes)


def _write_alerts(table: pa.Table, path: Path) -> None:
    con = duckdb.connect(str(path))
    try:
        con.execute("SET threads = 1")  # one writer thread keeps the file layout reproducible
        con.register("alerts_rows", table)
        con.execute(
            "CREATE TABLE alerts (call_id VARCHAR, mint VARCHAR, caller_name VARCHAR,"
            " chain VARCHAR, alert_ts_ms BIGINT, created_at VARCHAR)"
        )
        con.execute("INSERT INTO alerts SELECT * FROM alerts_rows")
        con.unregister("alerts_rows")
        con.execute("CHECKPOINT")
    finally:
        con.close()


def generate_sample_data(
    data_dir: Path,
    *,
    seed: int = 7,
    start: date = date(2024, 1, 1),
    days: int = 31,
    calls_per_day: int = 320,
    n_callers: int = 30,
) -> SampleData:
    """Write the sample calls and candles under `data_dir`, replacing earlier sample data."""
    params = _params(seed, start, days, calls_per_day, n_callers)
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    with _locked(data_dir):
        return _generate(data_dir, params, seed, start, days, calls_per_day, n_callers)


def ensure_sample_data(
    data_dir: Path,
    *,
    seed: int = 7,
    start: date = date(2024, 1, 1),
    days: int = 31,
    calls_per_day: int = 320,
    n_callers: int = 30,
) -> SampleData:
    """Generate the sample data unless `data_dir` already holds it for these parameters."""
    params = _params(seed, start, days, calls_per_day, n_callers)
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    out = SampleData(data_dir / ALERTS_FILE, data_dir / CANDLES_DIR)
    with _locked(data_dir):
        marker = _read_marker(data_dir)
        if (
            marker == {**params, "state": "complete"}
            and out.alerts_db.is_file()
            and out.candles_dir.is_dir()
        ):
            return out
        return _generate(data_dir, params, seed, start, days, calls_per_day, n_callers)


@contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    """One generator per data directory at a time (parallel test workers, two commands)."""
    with open(data_dir / LOCK_FILE, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read_marker(data_dir: Path) -> dict[str, object] | None:
    try:
        value = json.loads((data_dir / MARKER_FILE).read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _write_marker(data_dir: Path, value: dict[str, object]) -> None:
    tmp = data_dir / f"{MARKER_FILE}.tmp"
    tmp.write_text(json.dumps(value, sort_keys=True, indent=2) + "\n")
    os.replace(tmp, data_dir / MARKER_FILE)


def _generate(
    data_dir: Path,
    params: dict[str, object],
    seed: int,
    start: date,
    days: int,
    calls_per_day: int,
    n_callers: int,
) -> SampleData:
    out = SampleData(data_dir / ALERTS_FILE, data_dir / CANDLES_DIR)
    if _read_marker(data_dir) is None and (out.alerts_db.exists() or out.candles_dir.exists()):
        # Without our marker these files may be someone's real data: never overwrite them.
        raise FileExistsError(
            f"{data_dir} holds {ALERTS_FILE} or {CANDLES_DIR}/ not written by the sample "
            f"generator (no {MARKER_FILE}); move them away or pick another data directory"
        )
    start_ms = int(datetime(start.year, start.month, start.day, tzinfo=UTC).timestamp() * 1000)
    name_rng = _rng(seed, 0)
    names = _caller_names(name_rng, n_callers)
    skill, weights = _caller_skill(name_rng, n_callers)
    calls, tokens = _make_calls(seed, start_ms, days, calls_per_day, skill, weights)
    work = Path(tempfile.mkdtemp(prefix=".sample-", dir=data_dir))
    try:
        _write_alerts(_alerts_table(seed, calls, tokens, names), work / ALERTS_FILE)
        _write_candles(seed, tokens, start_ms, days, work / CANDLES_DIR)
        # Swap the new files in; the marker says "replacing" meanwhile, so a crash
        # here leaves files this generator knows it may overwrite next time.
        _write_marker(data_dir, {**params, "state": "replacing"})
        old = work / "old"
        old.mkdir()
        for name in (ALERTS_FILE, CANDLES_DIR):
            if (data_dir / name).exists():
                os.replace(data_dir / name, old / name)
            os.replace(work / name, data_dir / name)
        _write_marker(data_dir, {**params, "state": "complete"})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out
