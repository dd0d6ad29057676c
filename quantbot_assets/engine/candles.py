"""Candles as flat, time-sorted arrays with per-series offsets (no per-call copies).

`prepare_candles` turns a candle DataFrame into `PreparedCandles`: one float64 array per price
field, one int64 array of bar times, and `offsets` so that series `k` (one `(chain, mint)`)
is `[offsets[k], offsets[k + 1])`. Input that is already grouped by series and sorted by time
costs one parallel validation pass and no copies; anything else is sorted. Duplicate and
malformed bars are reported, never guessed: a malformed field becomes NaN (SEMANTICS: "a NaN
price proves nothing") and the bar keeps its timestamp.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from quantbot_assets.engine.resample import resample_arrays
from quantbot_assets.engine.threads import split_map
from quantbot_assets.params import INTERVAL_MS

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
def _sanitize_range(o, h, lo, c, a, b):  # type: ignore[no-untyped-def]
    """Rows [a, b): set malformed fields to NaN in place; return (row, field bitmask,
    high_below_low) of the rows touched."""
    rows = []
    masks = []
    hbl = []
    for i in range(a, b):
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
def _plan_series(ts, runs, run_order, ser_runs, pre_off, s0, s1, src, kept, ndup, unsorted):  # type: ignore[no-untyped-def]
    """Series [s0, s1) (each a list of runs, in input order): distinct bar times (`kept`) and
    duplicated times (`ndup`) per series. A series whose rows are not in time order gets its
    stable time order written to src[pre_off[s]:pre_off[s + 1]] (raw row numbers)."""
    for s in range(s0, s1):
        k = 0
        d = 0
        ok = True
        have = False
        prev = np.int64(0)
        indup = False
        for q in range(ser_runs[s], ser_runs[s + 1]):
            r = run_order[q]
            for i in range(runs[r], runs[r + 1]):
                t = ts[i]
                if have and t < prev:
                    ok = False
                    break
                if have and t == prev:
                    if not indup:
                        d += 1
                        indup = True
                else:
                    indup = False
                    k += 1
                    prev = t
                    have = True
            if not ok:
                break
        if not ok:
            p0 = pre_off[s]
            m = pre_off[s + 1] - p0
            rows = np.empty(m, np.int64)
            tv = np.empty(m, np.int64)
            w = 0
            for q in range(ser_runs[s], ser_runs[s + 1]):
                r = run_order[q]
                for i in range(runs[r], runs[r + 1]):
                    rows[w] = i
                    tv[w] = ts[i]
                    w += 1
            perm = np.argsort(tv, kind="mergesort")  # stable: equal times keep input order
            k = 0
            d = 0
            indup = False
            for j in range(m):
                src[p0 + j] = rows[perm[j]]
                t = tv[perm[j]]
                if j > 0 and t == prev:
                    if not indup:
                        d += 1
                        indup = True
                else:
                    indup = False
                    k += 1
                    prev = t
            unsorted[s] = True
        kept[s] = k
        ndup[s] = d


@njit(cache=True, nogil=True)
def _emit_series(  # type: ignore[no-untyped-def]
    ts,
    o,
    h,
    lo,
    c,
    v,
    runs,
    run_order,
    ser_runs,
    pre_off,
    unsorted,
    src,
    out_off,
    dup_off,
    s0,
    s1,
    check,
    ots,
    oo,
    oh,
    ol,
    oc,
    ov,
    mask,
    dfirst,
    dcount,
    dconf,
):
    """Write series [s0, s1) sorted by time, one bar per time, at out_off[s] (see _plan_series);
    duplicate groups go to (dfirst: first output row, dcount: rows, dconf: values differ) at
    dup_off[s]. A bar whose duplicates differ proves nothing: every field NaN, mask 0. The
    per-row work is written out in this loop, not in helper functions: a call per row (even
    inlined) made the kernel about 8x slower than the copy itself."""
    for s in range(s0, s1):
        w = out_off[s] - 1
        d = dup_off[s] - 1
        g = -1
        last = np.int64(0)
        conflict = False
        indup = False
        by_src = unsorted[s]
        n_seg = 1 if by_src else ser_runs[s + 1] - ser_runs[s]
        for q in range(n_seg):
            if by_src:
                a = pre_off[s]
                b = pre_off[s + 1]
            else:
                r = run_order[ser_runs[s] + q]
                a = runs[r]
                b = runs[r + 1]
            for p in range(a, b):
                i = src[p] if by_src else p
                t = ts[i]
                if g >= 0 and t == last:
                    if not indup:
                        d += 1
                        dfirst[d] = w
                        dcount[d] = 1
                        dconf[d] = False
                        indup = True
                    dcount[d] += 1
                    if not conflict and not (
                        _same(o[i], o[g])
                        and _same(h[i], h[g])
                        and _same(lo[i], lo[g])
                        and _same(c[i], c[g])
                        and _same(v[i], v[g])
                    ):
                        # a conflicting duplicate proves nothing: every field NaN, no mask
                        dconf[d] = True
                        conflict = True
                        oo[w] = np.nan
                        oh[w] = np.nan
                        ol[w] = np.nan
                        oc[w] = np.nan
                        ov[w] = np.nan
                        if check:
                            mask[w] = 0
                    continue
                w += 1
                g = i
                last = t
                conflict = False
                indup = False
                ots[w] = t
                # Malformed prices become NaN and mask[w] says which (bits 0-3: open, high,
                # low, close; bit 4: high < low), checked on the values in hand as they are
                # written: reading the bar back afterwards cost more than the copy.
                vo = o[i]
                vh = h[i]
                vl = lo[i]
                vc = c[i]
                ov[w] = v[i]
                if check:
                    m = 0
                    if not _valid(vo):
                        m |= 1
                        vo = np.nan
                    if not _valid(vh):
                        m |= 2
                    if not _valid(vl):
                        m |= 4
                    if not _valid(vc):
                        m |= 8
                        vc = np.nan
                    if (m & 6) == 0 and vh < vl:
                        m |= 16
                        vh = np.nan
                        vl = np.nan
                    if m & 2:
                        vh = np.nan
                    if m & 4:
                        vl = np.nan
                    mask[w] = m
                oo[w] = vo
                oh[w] = vh
                ol[w] = vl
                oc[w] = vc


@njit(cache=True, nogil=True)
def _count_not_equal_range(codes, value, a, b):  # type: ignore[no-untyped-def]
    cnt = 0
    for i in range(a, b):
        cnt += int(codes[i] != value)
    return cnt


@njit(cache=True, nogil=True)
def _flagged_range(mask, a, b):  # type: ignore[no-untyped-def]
    n = 0
    for i in range(a, b):
        n += int(mask[i] != 0)
    out = np.empty(n, np.int64)
    k = 0
    for i in range(a, b):
        if mask[i] != 0:
            out[k] = i
            k += 1
    return out


def _flagged(mask: np.ndarray) -> np.ndarray:
    """`np.flatnonzero(mask)` of a uint8 mask, on the pool (numpy's takes about 5 ns a byte)."""
    return np.concatenate(split_map(lambda a, b: _flagged_range(mask, a, b), len(mask), 1 << 16))


def _count_not_equal(codes: np.ndarray, value: int) -> int:
    return sum(
        split_map(lambda a, b: _count_not_equal_range(codes, value, a, b), len(codes), 1 << 16)
    )


# ---- DataFrame columns to arrays -------------------------------------------------------------


def _codes(col: pd.Series, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes (-1 = null) and the values they stand for, numbered in order of first
    appearance as `pd.factorize` does, without hashing every row: categorical columns (what
    Parquet dictionary columns become in pandas) give their codes as they are, Arrow string
    columns are factorized run by run (rows come grouped by series)."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        cats = np.asarray(col.cat.categories.astype(str), dtype=object)
        return np.asarray(col.array.codes), cats  # a view: `.cat.codes` would copy
    arrow = _arrow_strings(col)
    if arrow is not None:
        return _run_codes(arrow)
    codes, uniques = pd.factorize(col, use_na_sentinel=True)
    return codes, np.asarray(pd.Index(uniques).astype(str), dtype=object)


def _arrow_strings(col: pd.Series) -> pa.Array | None:
    """The column as one Arrow string array when pandas keeps it in Arrow (pandas' `str`
    dtype), else None."""
    if not isinstance(col.dtype, pd.StringDtype) or col.dtype.storage != "pyarrow":
        return None
    values = pa.array(col.array)  # __arrow_array__: the stored array, no copy
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        return None
    return values


def _run_codes(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """pd.factorize of an Arrow string array through its runs of equal values: the first row
    of each run is factorized (same first-appearance order) and its code repeated."""
    n = len(values)
    if n == 0:
        return np.empty(0, np.int32), np.empty(0, dtype=object)
    if n > 1 and values.null_count == 0:
        # The byte buffers compared in place, row against row, on the pool.
        _, offsets_buf, data_buf = values.buffers()
        width = np.int64 if pa.types.is_large_string(values.type) else np.int32
        offsets = np.frombuffer(offsets_buf, width)[values.offset : values.offset + n + 1]
        data = np.frombuffer(data_buf, np.uint8) if data_buf is not None else np.empty(0, np.uint8)
        # words[k, i]: the 8 bytes from byte 8 * i + k, so strings compare 8 bytes at a time
        m = (len(data) - 15) // 8 + 1 if len(data) >= 15 else 0
        words = np.ndarray((8, m), np.uint64, buffer=data, strides=(1, 8))
        parts = split_map(lambda a, b: _string_heads_range(offsets, data, words, a, b), n, 1 << 16)
        heads = np.concatenate([np.zeros(1, np.int64), *parts])
    elif n > 1:
        differs = pc.not_equal(values.slice(1), values.slice(0, n - 1)).fill_null(True)
        heads = np.flatnonzero(differs.to_numpy(zero_copy_only=False)) + 1
        heads = np.concatenate([np.zeros(1, np.int64), heads])
    else:
        heads = np.zeros(1, np.int64)
    encoded = pc.dictionary_encode(values.take(pa.array(heads)))
    head_codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32)
    codes = np.empty(n, np.int32)
    bounds = np.append(heads, n)
    split_map(lambda a, b: _fill_runs(head_codes, bounds, codes, a, b), len(heads), 1 << 10)
    cats = np.asarray(encoded.dictionary.to_pylist(), dtype=object)
    return codes, cats


@njit(cache=True, nogil=True)
def _string_heads_range(offsets, data, words, a, b):  # type: ignore[no-untyped-def]
    """Rows i in [max(a, 1), b) whose string differs from row i - 1 (Arrow offsets + bytes;
    `words` as built in `_run_codes`, compared where they reach, then byte by byte)."""
    out = np.empty(b - a, np.int64)
    k = 0
    m = words.shape[1]
    for i in range(max(a, 1), b):
        p0 = offsets[i - 1]
        p1 = offsets[i]
        size = offsets[i + 1] - p1
        differ = size != p1 - p0
        j = 0
        while not differ and j + 8 <= size:
            q0 = p0 + j
            q1 = p1 + j
            if (q0 >> 3) >= m or (q1 >> 3) >= m:
                break
            differ = words[q0 & 7, q0 >> 3] != words[q1 & 7, q1 >> 3]
            j += 8
        while not differ and j < size:
            differ = data[p0 + j] != data[p1 + j]
            j += 1
        if differ:
            out[k] = i
            k += 1
    return out[:k]


@njit(cache=True, nogil=True)
def _fill_runs(head_codes, bounds, codes, a, b):  # type: ignore[no-untyped-def]
    """codes[bounds[r]:bounds[r + 1]] = head_codes[r] for runs r in [a, b)."""
    for r in range(a, b):
        value = head_codes[r]
        for i in range(bounds[r], bounds[r + 1]):
            codes[i] = value


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
    n_keys = len(chain_cats) * len(mint_cats)
    stats, found = _scan(raw.ccode, raw.mcode, raw.ts, n_keys)
    if stats[:, 4].sum():
        raise ValueError("candles columns 'chain'/'mint' have null values")
    runs = found if found is not None else _offsets(raw, stats)
    if found is not None and stats[:, 3].sum() == 0 and _runs_unique(raw, runs, len(mint_cats)):
        return _prepare_sorted(raw, runs, chain_cats, mint_cats, interval, check_prices)
    return _prepare_unsorted(raw, runs, chain_cats, mint_cats, interval, check_prices)


def _prepare_sorted(
    raw: _Raw,
    offsets: np.ndarray,
    chain_cats: np.ndarray,
    mint_cats: np.ndarray,
    interval: str,
    check_prices: bool,
) -> tuple[PreparedCandles, list[pd.DataFrame]]:
    """Rows grouped by series, strictly increasing in time: the columns are used as they are
    (prices copied only when some field is malformed)."""
    n = len(raw.ts)
    starts = offsets[:-1]
    chain = chain_cats[raw.ccode[starts]] if n else np.empty(0, dtype=object)
    mint = mint_cats[raw.mcode[starts]] if n else np.empty(0, dtype=object)
    o, h, lo, c = raw.o, raw.h, raw.lo, raw.c
    issues: list[pd.DataFrame] = []
    if check_prices and _malformed(raw):
        o, h, lo, c = o.copy(), h.copy(), lo.copy(), c.copy()
        parts = split_map(lambda a, b: _sanitize_range(o, h, lo, c, a, b), n, 1 << 16)
        rows, masks, hbl = (np.concatenate([p[k] for p in parts]) for k in range(3))
        if len(rows):
            issues.append(
                _bad_bar_issues(
                    ts=raw.ts,
                    offsets=offsets,
                    chain=chain,
                    mint=mint,
                    rows=rows,
                    masks=masks,
                    hbl=hbl,
                )
            )
    prepared = PreparedCandles(interval, raw.ts, o, h, lo, c, raw.v, offsets, chain, mint)
    return prepared, issues


def _prepare_unsorted(
    raw: _Raw,
    runs: np.ndarray,
    chain_cats: np.ndarray,
    mint_cats: np.ndarray,
    interval: str,
    check_prices: bool,
) -> tuple[PreparedCandles, list[pd.DataFrame]]:
    """Any other row order: the result of a stable sort by (chain code, mint code, ts_ms),
    one bar per time, built without sorting rows. Runs of one series (`runs`) are ordered by
    series with a stable sort of one key per run, a series whose runs are in time order is
    copied as it is, and only a series that is not gets a stable sort of its times."""
    n_mints = max(1, len(mint_cats))
    starts = runs[:-1]
    run_key = raw.ccode[starts].astype(np.int64) * n_mints + raw.mcode[starts]
    run_order = np.argsort(run_key, kind="stable")
    sorted_keys = run_key[run_order]
    n_runs = len(run_key)
    ser_runs = np.concatenate(
        [[0], np.flatnonzero(sorted_keys[1:] != sorted_keys[:-1]) + 1, [n_runs]]
    ).astype(np.int64)
    pre_off = np.concatenate([[0], np.cumsum(np.diff(runs)[run_order])]).astype(np.int64)[ser_runs]
    n_series = len(ser_runs) - 1
    src = np.empty(len(raw.ts), np.int64)  # written only for series out of time order
    kept = np.zeros(n_series, np.int64)
    ndup = np.zeros(n_series, np.int64)
    unsorted = np.zeros(n_series, np.bool_)
    _by_series(
        lambda s0, s1: _plan_series(
            raw.ts, runs, run_order, ser_runs, pre_off, s0, s1, src, kept, ndup, unsorted
        ),
        pre_off,
    )
    out_off = np.concatenate([[0], np.cumsum(kept)]).astype(np.int64)
    dup_off = np.concatenate([[0], np.cumsum(ndup)]).astype(np.int64)
    m = int(out_off[-1])
    out = (
        np.empty(m, np.int64),
        *(np.empty(m, np.float64) for _ in range(5)),
    )
    mask = np.zeros(m if check_prices else 0, np.uint8)
    n_dup = int(dup_off[-1])
    dups = (np.empty(n_dup, np.int64), np.empty(n_dup, np.int64), np.empty(n_dup, np.bool_))
    _by_series(
        lambda s0, s1: _emit_series(  # type: ignore[call-arg]
            raw.ts,
            raw.o,
            raw.h,
            raw.lo,
            raw.c,
            raw.v,
            runs,
            run_order,
            ser_runs,
            pre_off,
            unsorted,
            src,
            out_off,
            dup_off,
            s0,
            s1,
            check_prices,
            *out,
            mask,
            *dups,
        ),
        pre_off,
    )
    keys = sorted_keys[ser_runs[:-1]]
    chain = chain_cats[keys // n_mints]
    mint = mint_cats[keys % n_mints]
    ts = out[0]
    issues: list[pd.DataFrame] = []
    first, count, conflict = dups
    if n_dup:
        series = np.searchsorted(out_off, first, side="right") - 1
        issues.append(
            pd.DataFrame(
                {
                    "reason": np.where(conflict, "conflicting_duplicate_bar", "duplicate_bar"),
                    "chain": chain[series],
                    "mint": mint[series],
                    "ts_ms": ts[first],
                    "detail": [
                        f"{k} rows for one bar"
                        + ("; values differ, prices set to NaN" if x else "")
                        for k, x in zip(count, conflict, strict=True)
                    ],
                }
            )
        )
    if check_prices:
        rows = _flagged(mask)
        if len(rows):
            bits = mask[rows]
            issues.append(
                _bad_bar_issues(
                    ts=ts,
                    offsets=out_off,
                    chain=chain,
                    mint=mint,
                    rows=rows,
                    masks=(bits & 15).astype(np.int64),
                    hbl=(bits & 16) != 0,
                )
            )
    o, h, lo, c, v = out[1:]
    prepared = PreparedCandles(interval, ts, o, h, lo, c, v, out_off, chain, mint)
    return prepared, issues


def _by_series(fn: Callable[[int, int], object], pre_off: np.ndarray) -> None:
    """fn(s0, s1) over consecutive series ranges of about equal row counts, on the pool."""
    starts = pre_off[:-1]

    def run(a: int, b: int) -> None:
        s0 = int(np.searchsorted(starts, a, side="left"))
        s1 = int(np.searchsorted(starts, b, side="left"))
        if s1 > s0:
            fn(s0, s1)

    split_map(run, int(pre_off[-1]), 1 << 16)


def _bad_bar_issues(
    *,
    ts: np.ndarray,
    offsets: np.ndarray,
    chain: np.ndarray,
    mint: np.ndarray,
    rows: np.ndarray,
    masks: np.ndarray,
    hbl: np.ndarray,
) -> pd.DataFrame:
    detail = np.empty(len(rows), dtype=object)
    for m in np.unique(masks[masks > 0]):
        detail[masks == m] = _MASK_DETAIL[int(m)]
    detail[hbl] = "high < low: high and low set to NaN"
    series = np.searchsorted(offsets, rows, side="right") - 1
    return pd.DataFrame(
        {
            "reason": np.where(hbl, "high_below_low", "invalid_price"),
            "chain": chain[series],
            "mint": mint[series],
            "ts_ms": ts[rows],
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
    at_interval = np.flatnonzero(icode == want)
    prepared, issues = _prepare_raw(
        raw.take(at_interval), chain_cats, mint_cats, interval, check_prices
    )
    one = _code_of(interval_cats, "1m")
    if interval == "1m" or one < 0:
        return prepared, _issues_frame(issues)
    # Series with no bar at the requested interval but 1m bars: resample them from 1m.
    is_one = icode == one
    one_raw = raw if is_one.all() else raw.take(np.flatnonzero(is_one))
    if prepared.n_series:
        n_mints = max(1, len(mint_cats))
        have = np.unique(raw.ccode[at_interval].astype(np.int64) * n_mints + raw.mcode[at_interval])
        one_key = one_raw.ccode.astype(np.int64) * n_mints + one_raw.mcode
        missing = ~np.isin(one_key, have) | (one_raw.ccode < 0) | (one_raw.mcode < 0)
        if not missing.any():
            return prepared, _issues_frame(issues)
        if not missing.all():
            one_raw = one_raw.take(np.flatnonzero(missing))
    elif len(one_raw.ts) == 0:
        return prepared, _issues_frame(issues)
    # resampling needs proven prices (its max/min skip NaN), so these bars are always checked
    minute, minute_issues = _prepare_raw(one_raw, chain_cats, mint_cats, "1m", True)
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
