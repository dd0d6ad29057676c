"""Candles as flat, time-sorted arrays with per-series offsets (no per-call copies).

`prepare_candles` turns a candle DataFrame into `PreparedCandles`: one float64 array per price
field, one int64 array of bar times, and `offsets` so that series `k` (one `(chain, mint)`)
is `[offsets[k], offsets[k + 1])`. Input that is already grouped by series and sorted by time
costs one parallel validation pass and no copies; anything else is sorted. Duplicate and
malformed bars are reported, never guessed: a malformed field becomes NaN (SEMANTICS: "a NaN
price proves nothing") and the bar keeps its timestamp.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numba import njit

from quantbot_assets.engine.resample import resample_arrays
from quantbot_assets.engine.threads import split_map

INTERVAL_MS: dict[str, int] = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "1h": 3_600_000}
CANDLE_COLUMNS = ["chain", "mint", "interval", "ts_ms", "open", "high", "low", "close", "volume"]
ISSUE_COLUMNS = ["reason", "chain", "mint", "ts_ms", "detail"]
_PRICE_FIELDS = ("open", "high", "low", "close")


@dataclass(frozen=True)
class PreparedCandles:
    """Bars of many series in flat arrays; series k is rows offsets[k]:offsets[k+1]."""

    interval: str
    ts: np.ndarray  # int64, strictly increasing inside each series
    open: np.ndarray  # float64; NaN where the input field was malformed
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    offsets: np.ndarray  # int64, len = n_series + 1
    chain: np.ndarray  # object array of str, one per series
    mint: np.ndarray

    @property
    def interval_ms(self) -> int:
        return INTERVAL_MS[self.interval]

    @property
    def n_series(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_bars(self) -> int:
        return len(self.ts)

    def series_of(self, chain: np.ndarray, mint: np.ndarray) -> np.ndarray:
        """Series index of each (chain, mint) pair, -1 where the store has no such series."""
        index = pd.MultiIndex.from_arrays([self.chain, self.mint])
        wanted = pd.MultiIndex.from_arrays(
            [np.asarray(chain, dtype=object), np.asarray(mint, dtype=object)]
        )
        return np.asarray(index.get_indexer(wanted), dtype=np.int64)


def interval_ms(interval: str) -> int:
    if interval not in INTERVAL_MS:
        raise ValueError(
            f"interval: unknown interval {interval!r}; expected one of {sorted(INTERVAL_MS)}"
        )
    return INTERVAL_MS[interval]


# ---- kernels ---------------------------------------------------------------------------------


@njit(cache=True, nogil=True, inline="always")
def _valid(x: float) -> bool:
    return x > 0.0 and x < np.inf


@njit(cache=True, nogil=True)
def _scan_range(ccode, mcode, ts, a, b, buf):  # type: ignore[no-untyped-def]
    """Rows [a, b): (series breaks, time disorder incl. duplicates, null keys); the first
    len(buf) break rows are written to buf (saves a second pass to find them)."""
    breaks = 0
    disorder = 0
    nullkey = 0
    cap = len(buf)
    for i in range(max(a, 1), b):
        same = (ccode[i] == ccode[i - 1]) & (mcode[i] == mcode[i - 1])
        if not same:
            if breaks < cap:
                buf[breaks] = i
            breaks += 1
        disorder += int(same & (ts[i] <= ts[i - 1]))
        nullkey += int((ccode[i] < 0) | (mcode[i] < 0))
    if b > a and a == 0:
        nullkey += int((ccode[0] < 0) | (mcode[0] < 0))
    return breaks, disorder, nullkey


@njit(cache=True, nogil=True)
def _malformed_range(o, h, lo, c, a, b):  # type: ignore[no-untyped-def]
    """Malformed bars among rows [a, b); branch-free so that LLVM vectorises it."""
    bad = 0
    for i in range(a, b):
        hi = h[i]
        li = lo[i]
        oi = o[i]
        ci = c[i]
        # low > 0 and high >= low imply high > 0; high < inf and high >= low imply low < inf
        ok = (
            (li > 0.0)
            & (hi >= li)
            & (hi < np.inf)
            & (oi > 0.0)
            & (oi < np.inf)
            & (ci > 0.0)
            & (ci < np.inf)
        )
        bad += int(not ok)
    return bad


def _scan(ccode, mcode, ts, max_series: int) -> tuple[np.ndarray, np.ndarray | None]:  # type: ignore[no-untyped-def]
    """(per chunk [a, b, breaks, disorder, nullkey], series offsets or None when a chunk had
    more breaks than there can be series, i.e. the rows are not grouped by series)."""
    cap = max(1, min(max_series, 1 << 20))

    def run(a: int, b: int) -> tuple[tuple[int, ...], np.ndarray]:
        buf = np.empty(min(b - a, cap), np.int64)
        return (a, b, *_scan_range(ccode, mcode, ts, a, b, buf)), buf

    parts = split_map(run, len(ts), 1 << 16)
    stats = np.array([p[0] for p in parts], dtype=np.int64).reshape(-1, 5)
    n = len(ts)
    if n == 0:
        return stats, np.zeros(1, np.int64)
    if any(int(st[2]) > len(buf) for st, buf in parts):
        return stats, None
    offsets = np.concatenate([[0], *[buf[: int(st[2])] for st, buf in parts], [n]]).astype(np.int64)
    return stats, offsets


def _malformed(raw: _Raw) -> int:
    return sum(
        split_map(
            lambda a, b: _malformed_range(raw.o, raw.h, raw.lo, raw.c, a, b), len(raw.ts), 1 << 16
        )
    )


@njit(cache=True, nogil=True)
def _fill_breaks(ccode, mcode, a, b, w, offsets):  # type: ignore[no-untyped-def]
    for i in range(max(a, 1), b):
        if ccode[i] != ccode[i - 1] or mcode[i] != mcode[i - 1]:
            offsets[w] = i
            w += 1


@njit(cache=True, nogil=True)
def _sanitize(o, h, lo, c):  # type: ignore[no-untyped-def]
    """Set malformed fields to NaN in place; return (row, field bitmask, high_below_low)."""
    n = len(o)
    rows = []
    masks = []
    hbl = []
    for i in range(n):
        m = 0
        if not _valid(o[i]):
            m |= 1
        if not _valid(h[i]):
            m |= 2
        if not _valid(lo[i]):
            m |= 4
        if not _valid(c[i]):
            m |= 8
        below = (m & 6) == 0 and h[i] < lo[i]
        if m != 0 or below:
            rows.append(i)
            masks.append(m)
            hbl.append(below)
            if m & 1:
                o[i] = np.nan
            if m & 2:
                h[i] = np.nan
            if m & 4:
                lo[i] = np.nan
            if m & 8:
                c[i] = np.nan
            if below:
                h[i] = np.nan
                lo[i] = np.nan
    return np.array(rows, np.int64), np.array(masks, np.int64), np.array(hbl, np.bool_)


@njit(cache=True, nogil=True)
def _same(a: float, b: float) -> bool:
    return a == b or (a != a and b != b)


@njit(cache=True, nogil=True)
def _dedupe(ccode, mcode, ts, o, h, lo, c, v):  # type: ignore[no-untyped-def]
    """On sorted rows: keep mask, and per duplicated (key, ts) its first row, count, conflict."""
    n = len(ts)
    keep = np.ones(n, np.bool_)
    first = []
    count = []
    conflict = []
    i = 1
    while i < n:
        if ccode[i] == ccode[i - 1] and mcode[i] == mcode[i - 1] and ts[i] == ts[i - 1]:
            g = i - 1
            cnt = 1
            clash = False
            while i < n and ccode[i] == ccode[g] and mcode[i] == mcode[g] and ts[i] == ts[g]:
                keep[i] = False
                cnt += 1
                if not (
                    _same(o[i], o[g])
                    and _same(h[i], h[g])
                    and _same(lo[i], lo[g])
                    and _same(c[i], c[g])
                    and _same(v[i], v[g])
                ):
                    clash = True
                i += 1
            first.append(g)
            count.append(cnt)
            conflict.append(clash)
        else:
            i += 1
    return keep, np.array(first, np.int64), np.array(count, np.int64), np.array(conflict, np.bool_)


@njit(cache=True, nogil=True)
def _count_not_equal_range(codes, value, a, b):  # type: ignore[no-untyped-def]
    cnt = 0
    for i in range(a, b):
        cnt += int(codes[i] != value)
    return cnt


def _count_not_equal(codes: np.ndarray, value: int) -> int:
    return sum(
        split_map(lambda a, b: _count_not_equal_range(codes, value, a, b), len(codes), 1 << 16)
    )


# ---- DataFrame columns to arrays -------------------------------------------------------------


def _codes(col: pd.Series, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes (-1 = null) and the values they stand for, without a string sort when
    the column is categorical (what Parquet dictionary columns become in pandas)."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        cats = np.asarray(col.cat.categories.astype(str), dtype=object)
        return np.asarray(col.array.codes), cats  # a view: `.cat.codes` would copy
    codes, uniques = pd.factorize(col, use_na_sentinel=True)
    return codes, np.asarray(pd.Index(uniques).astype(str), dtype=object)


def _float_column(df: pd.DataFrame, name: str) -> np.ndarray:
    col = df[name]
    if col.dtype == np.float64:
        return col.to_numpy()
    try:
        return col.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"candles column {name!r} is not numeric: {exc}") from None


def _ts_column(df: pd.DataFrame) -> np.ndarray:
    col = df["ts_ms"]
    if not pd.api.types.is_integer_dtype(col.dtype):
        raise ValueError(
            f"candles column 'ts_ms' must hold integer epoch milliseconds, got {col.dtype}"
        )
    if not isinstance(col.dtype, np.dtype) and col.isna().any():
        raise ValueError("candles column 'ts_ms' has null values")
    return col.to_numpy(dtype=np.int64)


# ---- preparation -----------------------------------------------------------------------------


@dataclass
class _Raw:
    ccode: np.ndarray
    mcode: np.ndarray
    ts: np.ndarray
    o: np.ndarray
    h: np.ndarray
    lo: np.ndarray
    c: np.ndarray
    v: np.ndarray

    def take(self, idx: np.ndarray) -> _Raw:
        return _Raw(
            *(
                a[idx]
                for a in (self.ccode, self.mcode, self.ts, self.o, self.h, self.lo, self.c, self.v)
            )
        )


_MASK_DETAIL = {
    m: "not finite or <= 0: "
    + ", ".join(f for bit, f in enumerate(_PRICE_FIELDS) if m & (1 << bit))
    for m in range(1, 16)
}


def _prepare_raw(
    raw: _Raw, chain_cats: np.ndarray, mint_cats: np.ndarray, interval: str, check_prices: bool
) -> tuple[PreparedCandles, list[pd.DataFrame]]:
    issues: list[pd.DataFrame] = []
    n = len(raw.ts)
    n_keys = len(chain_cats) * len(mint_cats)
    stats, found = _scan(raw.ccode, raw.mcode, raw.ts, n_keys)
    if stats[:, 4].sum():
        raise ValueError("candles columns 'chain'/'mint' have null values")
    offsets = found if found is not None else _offsets(raw, stats)
    grouped = (
        found is not None and stats[:, 3].sum() == 0 and _runs_unique(raw, offsets, len(mint_cats))
    )
    copied = False
    conflicted = np.empty(0, np.int64)  # rows whose prices a conflicting duplicate erased
    if not grouped:
        order = np.lexsort((raw.ts, raw.mcode, raw.ccode))
        raw = raw.take(order)
        copied = True
        keep, first, count, conflict = _dedupe(
            raw.ccode, raw.mcode, raw.ts, raw.o, raw.h, raw.lo, raw.c, raw.v
        )
        if len(first):
            issues.append(
                pd.DataFrame(
                    {
                        "reason": np.where(conflict, "conflicting_duplicate_bar", "duplicate_bar"),
                        "chain": chain_cats[raw.ccode[first]],
                        "mint": mint_cats[raw.mcode[first]],
                        "ts_ms": raw.ts[first],
                        "detail": [
                            f"{k} rows for one bar"
                            + ("; values differ, prices set to NaN" if x else "")
                            for k, x in zip(count, conflict, strict=True)
                        ],
                    }
                )
            )
            # A conflicting duplicate proves nothing about the bar: keep its time, no prices.
            for arr in (raw.o, raw.h, raw.lo, raw.c, raw.v):
                arr[first[conflict]] = np.nan
            erased = np.zeros(n, np.bool_)
            erased[first[conflict]] = True
            kept = np.flatnonzero(keep)
            conflicted = np.flatnonzero(erased[kept])
            raw = raw.take(kept)
        n = len(raw.ts)
        stats, found = _scan(raw.ccode, raw.mcode, raw.ts, n_keys)
        offsets = found if found is not None else _offsets(raw, stats)
    if check_prices and _malformed(raw):
        if not copied:
            raw = _Raw(
                raw.ccode,
                raw.mcode,
                raw.ts,
                raw.o.copy(),
                raw.h.copy(),
                raw.lo.copy(),
                raw.c.copy(),
                raw.v,
            )
        rows, masks, hbl = _sanitize(raw.o, raw.h, raw.lo, raw.c)
        # Conflicting duplicates were already reported; their NaN prices are not new findings.
        fresh = ~np.isin(rows, conflicted)
        rows, masks, hbl = rows[fresh], masks[fresh], hbl[fresh]
        if len(rows):
            issues.append(_bad_bar_issues(raw, rows, masks, hbl, chain_cats, mint_cats))
    starts = offsets[:-1]
    prepared = PreparedCandles(
        interval=interval,
        ts=raw.ts,
        open=raw.o,
        high=raw.h,
        low=raw.lo,
        close=raw.c,
        volume=raw.v,
        offsets=offsets,
        chain=chain_cats[raw.ccode[starts]] if n else np.empty(0, dtype=object),
        mint=mint_cats[raw.mcode[starts]] if n else np.empty(0, dtype=object),
    )
    return prepared, issues


def _bad_bar_issues(
    raw: _Raw,
    rows: np.ndarray,
    masks: np.ndarray,
    hbl: np.ndarray,
    chain_cats: np.ndarray,
    mint_cats: np.ndarray,
) -> pd.DataFrame:
    detail = np.empty(len(rows), dtype=object)
    for m in np.unique(masks[masks > 0]):
        detail[masks == m] = _MASK_DETAIL[int(m)]
    detail[hbl] = "high < low: high and low set to NaN"
    return pd.DataFrame(
        {
            "reason": np.where(hbl, "high_below_low", "invalid_price"),
            "chain": chain_cats[raw.ccode[rows]],
            "mint": mint_cats[raw.mcode[rows]],
            "ts_ms": raw.ts[rows],
            "detail": detail,
        }
    )


def _offsets(raw: _Raw, stats: np.ndarray) -> np.ndarray:
    """Series start rows from the per-chunk break counts of `_scan`, filled chunk-parallel."""
    n = len(raw.ts)
    if n == 0:
        return np.zeros(1, np.int64)
    breaks = stats[:, 2]
    offsets = np.empty(int(breaks.sum()) + 2, np.int64)
    offsets[0] = 0
    offsets[-1] = n
    starts = 1 + np.concatenate([[0], np.cumsum(breaks)[:-1]])
    chunk = {int(a): (int(b), int(w)) for (a, b), w in zip(stats[:, :2], starts, strict=True)}

    def run(a: int, b: int) -> None:
        # split_map uses the same bounds as _scan for the same n, so each range is a chunk
        b0, w = chunk[a]
        assert b0 == b
        _fill_breaks(raw.ccode, raw.mcode, a, b, w, offsets)

    split_map(run, n, 1 << 16)
    return offsets


def _runs_unique(raw: _Raw, offsets: np.ndarray, n_mints: int) -> bool:
    if len(offsets) <= 2:
        return True
    starts = offsets[:-1]
    key = raw.ccode[starts].astype(np.int64) * n_mints + raw.mcode[starts]
    return len(np.unique(key)) == len(key)


def _check_columns(candles: pd.DataFrame) -> None:
    missing = [c for c in CANDLE_COLUMNS if c not in candles.columns]
    if missing:
        raise ValueError(f"candles: missing columns {missing}")


def _issues_frame(parts: list[pd.DataFrame]) -> pd.DataFrame:
    if not parts:
        return pd.DataFrame(
            {
                "reason": pd.Series([], dtype=object),
                "chain": pd.Series([], dtype=object),
                "mint": pd.Series([], dtype=object),
                "ts_ms": pd.Series([], dtype=np.int64),
                "detail": pd.Series([], dtype=object),
            }
        )
    out = pd.concat(parts, ignore_index=True)
    out["ts_ms"] = out["ts_ms"].astype(np.int64)
    return out[ISSUE_COLUMNS]


def prepare_candles(
    candles: pd.DataFrame, interval: str = "1m"
) -> tuple[PreparedCandles, pd.DataFrame]:
    """Flat sorted arrays + per-series offsets, and a frame of data issues
    [reason, chain, mint, ts_ms, detail]. Series with no bars at `interval` but 1m bars are
    resampled from 1m. Malformed price fields are NaN in the result."""
    return _prepare_frame(candles, interval, check_prices=True)


def prepare_for_kernels(candles: pd.DataFrame, interval: str) -> PreparedCandles:
    """Like `prepare_candles` but without the pass over every price: the kernels read each
    field through `windows.proven`, which gives malformed fields the same NaN meaning, so
    the API functions (which do not return data issues) skip that pass. Structural problems
    (unsorted rows, duplicates) are still handled the same way."""
    return _prepare_frame(candles, interval, check_prices=False)[0]


def _prepare_frame(
    candles: pd.DataFrame, interval: str, check_prices: bool
) -> tuple[PreparedCandles, pd.DataFrame]:
    interval_ms(interval)
    _check_columns(candles)
    ccode, chain_cats = _codes(candles["chain"], "chain")
    mcode, mint_cats = _codes(candles["mint"], "mint")
    icode, interval_cats = _codes(candles["interval"], "interval")
    raw = _Raw(
        ccode,
        mcode,
        _ts_column(candles),
        _float_column(candles, "open"),
        _float_column(candles, "high"),
        _float_column(candles, "low"),
        _float_column(candles, "close"),
        _float_column(candles, "volume"),
    )
    known = set(INTERVAL_MS)
    unknown = [x for x in interval_cats if x not in known]
    if (
        unknown
        and (np.isin(icode, [i for i, x in enumerate(interval_cats) if x not in known])).any()
    ):
        raise ValueError(f"candles column 'interval': unknown values {unknown}")
    want = _code_of(interval_cats, interval)
    n = len(raw.ts)
    if want >= 0 and (n == 0 or _count_not_equal(icode, want) == 0):
        prepared, issues = _prepare_raw(raw, chain_cats, mint_cats, interval, check_prices)
        return prepared, _issues_frame(issues)
    if (icode < 0).any():
        raise ValueError("candles column 'interval' has null values")
    at_interval = icode == want
    prepared, issues = _prepare_raw(
        raw.take(np.flatnonzero(at_interval)), chain_cats, mint_cats, interval, check_prices
    )
    one = _code_of(interval_cats, "1m")
    if interval == "1m" or one < 0:
        return prepared, _issues_frame(issues)
    # Series with no bar at the requested interval but 1m bars: resample them from 1m.
    have = pd.MultiIndex.from_arrays([prepared.chain, prepared.mint])
    one_rows = np.flatnonzero(icode == one)
    one_raw = raw.take(one_rows)
    one_key = pd.MultiIndex.from_arrays([chain_cats[one_raw.ccode], mint_cats[one_raw.mcode]])
    missing = ~one_key.isin(have)
    if not missing.any():
        return prepared, _issues_frame(issues)
    # resampling needs proven prices (its max/min skip NaN), so these bars are always checked
    minute, minute_issues = _prepare_raw(
        one_raw.take(np.flatnonzero(missing)), chain_cats, mint_cats, "1m", True
    )
    issues.extend(minute_issues)
    resampled = resample_prepared(minute, interval)
    return concat_prepared(prepared, resampled), _issues_frame(issues)


def _code_of(cats: np.ndarray, value: str) -> int:
    hits = np.flatnonzero(cats == value)
    return int(hits[0]) if len(hits) else -1


def resample_prepared(minute: PreparedCandles, interval: str) -> PreparedCandles:
    """Bars of `interval` built from 1m bars (open of first, max high, min low, close of last,
    sum of volume; aligned to multiples of the interval since the epoch)."""
    if minute.interval != "1m":
        raise ValueError(f"interval: resampling needs 1m bars, got {minute.interval}")
    ts, o, h, lo, c, v, offsets = resample_arrays(
        minute.ts,
        minute.open,
        minute.high,
        minute.low,
        minute.close,
        minute.volume,
        minute.offsets,
        interval_ms(interval),
    )
    return PreparedCandles(interval, ts, o, h, lo, c, v, offsets, minute.chain, minute.mint)


def concat_prepared(a: PreparedCandles, b: PreparedCandles) -> PreparedCandles:
    if b.n_series == 0:
        return a
    if a.n_series == 0:
        return b
    return PreparedCandles(
        a.interval,
        np.concatenate([a.ts, b.ts]),
        np.concatenate([a.open, b.open]),
        np.concatenate([a.high, b.high]),
        np.concatenate([a.low, b.low]),
        np.concatenate([a.close, b.close]),
        np.concatenate([a.volume, b.volume]),
        np.concatenate([a.offsets, b.offsets[1:] + a.offsets[-1]]),
        np.concatenate([a.chain, b.chain]),
        np.concatenate([a.mint, b.mint]),
    )


def prepared_to_frame(prepared: PreparedCandles) -> pd.DataFrame:
    """The prepared bars as a candle DataFrame (SEMANTICS columns), series after series."""
    counts = np.diff(prepared.offsets)
    return pd.DataFrame(
        {
            "chain": np.repeat(prepared.chain, counts),
            "mint": np.repeat(prepared.mint, counts),
            "interval": prepared.interval,
            "ts_ms": prepared.ts,
            "open": prepared.open,
            "high": prepared.high,
            "low": prepared.low,
            "close": prepared.close,
            "volume": prepared.volume,
        }
    )


def resample_candles(candles: pd.DataFrame, interval: str) -> pd.DataFrame:
    """`interval` bars built from the 1m rows of `candles` (SEMANTICS candle columns).

    Malformed 1m fields count as NaN (they prove nothing); `prepare_candles` reports them."""
    interval_ms(interval)
    _check_columns(candles)
    minute, _ = prepare_candles(candles[candles["interval"].astype(str) == "1m"], "1m")
    if interval == "1m":
        return prepared_to_frame(minute)
    return prepared_to_frame(resample_prepared(minute, interval))
