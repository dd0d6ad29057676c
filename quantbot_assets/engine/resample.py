"""Resampling kernel: bars of a longer interval from 1m bars, series by series.

Open of the first 1m bar, max high, min low, close of the last bar, sum of volume; a bar opens
at a multiple of the interval since the epoch. A NaN field of a 1m bar proves nothing: highs,
lows and volumes skip it (NaN only when every bar of the bucket lacks it); open and close are
those of the first and last bar, NaN if that bar's field is NaN.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from quantbot_assets.engine.threads import split_map


@njit(cache=True, nogil=True)
def _bucket(t: int, step: int) -> int:
    return t - t % step  # floor (numba follows Python's sign rule for %)


@njit(cache=True, nogil=True)
def _count_range(ts, offsets, step, k0, k1, counts):  # type: ignore[no-untyped-def]
    """counts[k] = number of buckets of series k, for k in [k0, k1)."""
    for k in range(k0, k1):
        last = np.iinfo(np.int64).min
        cnt = 0
        for i in range(offsets[k], offsets[k + 1]):
            b = _bucket(ts[i], step)
            if cnt == 0 or b != last:
                cnt += 1
                last = b
        counts[k] = cnt


@njit(cache=True, nogil=True)
def _fill_range(ts, o, h, lo, c, v, offsets, step, k0, k1, new_off, out):  # type: ignore[no-untyped-def]
    """The buckets of series [k0, k1) written at new_off[k] of out = (ts, o, h, lo, c, v)."""
    rts, ro, rh, rl, rc, rv = out
    for k in range(k0, k1):
        w = new_off[k] - 1
        last = np.iinfo(np.int64).min
        first = True
        for i in range(offsets[k], offsets[k + 1]):
            b = _bucket(ts[i], step)
            if first or b != last:
                first = False
                last = b
                w += 1
                rts[w] = b
                ro[w] = o[i]
                rh[w] = h[i]
                rl[w] = lo[i]
                rv[w] = v[i]
            else:
                if h[i] > rh[w] or (rh[w] != rh[w] and h[i] == h[i]):
                    rh[w] = h[i]
                if lo[i] < rl[w] or (rl[w] != rl[w] and lo[i] == lo[i]):
                    rl[w] = lo[i]
                if v[i] == v[i]:
                    rv[w] = v[i] if rv[w] != rv[w] else rv[w] + v[i]
            rc[w] = c[i]


def resample_arrays(ts, o, h, lo, c, v, offsets, step):  # type: ignore[no-untyped-def]
    """(ts, open, high, low, close, volume, offsets) of the resampled series; series ranges of
    about equal bar counts run on the engine's thread pool."""
    n_series = len(offsets) - 1
    starts = offsets[:-1]
    step = np.int64(step)

    def by_series(fn):  # type: ignore[no-untyped-def]
        def run(a: int, b: int) -> None:
            k0 = int(np.searchsorted(starts, a, side="left"))
            k1 = int(np.searchsorted(starts, b, side="left"))
            # empty series at the end of a range belong to it (their start equals b)
            if b == int(offsets[-1]):
                k1 = n_series
            if k1 > k0:
                fn(k0, k1)

        split_map(run, int(offsets[-1]), 1 << 16)

    counts = np.zeros(n_series, np.int64)
    by_series(lambda k0, k1: _count_range(ts, offsets, step, k0, k1, counts))
    new_off = np.zeros(n_series + 1, np.int64)
    np.cumsum(counts, out=new_off[1:])
    m = int(new_off[-1])
    out = (np.empty(m, np.int64), *(np.empty(m, np.float64) for _ in range(5)))
    by_series(lambda k0, k1: _fill_range(ts, o, h, lo, c, v, offsets, step, k0, k1, new_off, out))
    return (*out, new_off)
