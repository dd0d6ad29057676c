"""Resampling kernel: bars of a longer interval from 1m bars, series by series.

Open of the first 1m bar, max high, min low, close of the last bar, sum of volume; a bar opens
at a multiple of the interval since the epoch. A NaN field of a 1m bar proves nothing: highs,
lows and volumes skip it (NaN only when every bar of the bucket lacks it); open and close are
those of the first and last bar, NaN if that bar's field is NaN.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _bucket(t: int, step: int) -> int:
    return t - t % step  # floor (numba follows Python's sign rule for %)


@njit(cache=True, nogil=True)
def resample_arrays(ts, o, h, lo, c, v, offsets, step):  # type: ignore[no-untyped-def]
    """(ts, open, high, low, close, volume, offsets) of the resampled series."""
    n_series = len(offsets) - 1
    counts = np.zeros(n_series, np.int64)
    for k in range(n_series):
        last = np.iinfo(np.int64).min
        cnt = 0
        for i in range(offsets[k], offsets[k + 1]):
            b = _bucket(ts[i], step)
            if cnt == 0 or b != last:
                cnt += 1
                last = b
        counts[k] = cnt
    new_off = np.zeros(n_series + 1, np.int64)
    for k in range(n_series):
        new_off[k + 1] = new_off[k] + counts[k]
    m = new_off[-1]
    rts = np.empty(m, np.int64)
    ro = np.empty(m, np.float64)
    rh = np.empty(m, np.float64)
    rl = np.empty(m, np.float64)
    rc = np.empty(m, np.float64)
    rv = np.empty(m, np.float64)
    for k in range(n_series):
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
    return rts, ro, rh, rl, rc, rv, new_off
