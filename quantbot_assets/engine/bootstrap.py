"""Percentile-bootstrap intervals for a median and a win rate (docs/semantics.md "Intervals").

The same numbers on every re-run: the generator is seeded from content (`bootstrap_seed` of
the run's parameter set and the group's name, never a clock or a run id), and a sample is put
in ascending order of value before it is resampled, so the order of its rows does not matter.

Resample b takes the values at positions I[b, 0..n-1] of the sorted sample, where I is a
(resamples x n) matrix drawn row by row with `numpy.random.default_rng(seed).integers(0, n)`.
Its statistics are the median (numpy's linear interpolation) and the share of wins. The
interval is the 5th and 95th percentile (linear interpolation) of the resampled statistics.
Samples of the same size can share one draw of I (the frontier: every policy of a caller);
each still gets exactly the interval it would get alone with the same seed.

Fast: one pass of a compiled kernel over each row of I counts how often each position was
drawn; the running count gives, for every sample of the block, the two order statistics of
the median and (with the wins a suffix of the sorted sample, as for returns > 0) the win
count by a lookup, without sorting I; a block of many policies costs little more than one.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
from numba import njit

RESAMPLES = 1000
LEVEL = 0.90
# Columns of `bootstrap_intervals`: median low and high, win rate low and high.
MEDIAN_LO, MEDIAN_HI, WIN_LO, WIN_HI = range(4)
# Resamples drawn at once are bounded so that I never holds more than this many positions.
_CHUNK_POSITIONS = 2_000_000


def bootstrap_seed(*parts: object) -> int:
    """A 64-bit seed from content: the first 8 bytes (little endian) of the SHA-256 of the
    parts as compact JSON (`["summary","<params_hash>","<policy_id>","<day>"]`)."""
    text = json.dumps(list(parts), separators=(",", ":"), default=str)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def _lerp_half(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # numpy's percentile interpolation at t = 0.5, written as numpy writes it (b - (b-a)*0.5)
    # so that the median of a resample is bit for bit np.percentile(resample, 50)
    return b - (b - a) * 0.5


def _percentiles_of_sorted(rows: np.ndarray, q: list[float]) -> np.ndarray:
    """`np.percentile(row, q)` (linear) of each row of an ascending-sorted 2-D array, written
    out as numpy computes it (virtual index (n-1)*q/100, its `_lerp`), so the numbers are
    bit for bit numpy's; one sort serves every row instead of a partition per call."""
    n = rows.shape[1]
    virtual = (n - 1) * np.true_divide(np.asarray(q, dtype=np.float64), 100)
    prev = np.floor(virtual).astype(np.intp)
    t = virtual - prev
    a, b = rows[:, prev], rows[:, np.minimum(prev + 1, n - 1)]
    diff = b - a
    return np.where(t >= 0.5, b - diff * (1 - t), a + diff * t)


@njit(cache=True, nogil=True)
def _order_positions(
    idx: np.ndarray, lo_pos: int, hi_pos: int, thresholds: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each row b of `idx` (positions drawn from 0 .. n-1): the positions holding its
    `lo_pos`-th and `hi_pos`-th smallest draw (0-based), and for each threshold t how many
    draws are at positions >= t."""
    bc, n = idx.shape
    lo = np.empty(bc, np.int64)
    hi = np.empty(bc, np.int64)
    at_least = np.empty((len(thresholds), bc), np.int64)
    counts = np.empty(n, np.int64)
    below = np.empty(n + 1, np.int64)
    for b in range(bc):
        counts[:] = 0
        for j in range(n):
            counts[idx[b, j]] += 1
        below[0] = 0
        for p in range(n):
            below[p + 1] = below[p] + counts[p]
        # the r-th smallest draw is at the first position p with below[p + 1] > r
        p = 0
        while below[p + 1] <= lo_pos:
            p += 1
        lo[b] = p
        while below[p + 1] <= hi_pos:
            p += 1
        hi[b] = p
        for t in range(len(thresholds)):
            at_least[t, b] = n - below[thresholds[t]]
    return lo, hi, at_least


def bootstrap_intervals(
    values: np.ndarray,
    seed: int,
    *,
    wins: np.ndarray | None = None,
    resamples: int = RESAMPLES,
    level: float = LEVEL,
) -> np.ndarray:
    """Intervals of the median and the win rate of each row of `values` (k samples of n).

    `wins` (bool, same shape) says which values count as wins; default `values > 0`.
    Returns a (k, 4) float array [median_lo, median_hi, win_lo, win_hi]; NaN rows when
    n < 2 (no spread to resample: 0 values have no statistic, 1 value would give an
    interval of width zero, a certainty the data does not have). Values must be finite.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if resamples < 1 or not 0 < level < 1:
        raise ValueError(f"resamples must be >= 1 and level in (0, 1), got {resamples}, {level}")
    k, n = x.shape
    out = np.full((k, 4), np.nan)
    if n < 2 or k == 0:
        return out
    if not np.isfinite(x).all():
        raise ValueError("values: bootstrap samples must be finite")
    order = np.argsort(x, axis=1, kind="stable")
    xs = np.take_along_axis(x, order, axis=1)
    w = x > 0.0 if wins is None else np.asarray(wins, dtype=bool).reshape(x.shape)
    ws = np.take_along_axis(w, order, axis=1)
    # Wins that are a suffix of the sorted sample (returns > 0) are counted by position.
    first_win = n - ws.sum(axis=1)
    suffix = (ws == (np.arange(n)[None, :] >= first_win[:, None])).all(axis=1)
    h = (n - 1) * 0.5
    lo_pos, hi_pos = int(np.floor(h)), int(np.ceil(h))
    medians = np.empty((k, resamples))
    win_counts = np.empty((k, resamples))
    rng = np.random.default_rng(seed)
    step = max(1, _CHUNK_POSITIONS // n)
    fast = np.flatnonzero(suffix)
    fast_first_win = first_win[fast].astype(np.int64)
    for b0 in range(0, resamples, step):
        bc = min(step, resamples - b0)
        idx = rng.integers(0, n, size=(bc, n))
        lo_p, hi_p, at_least = _order_positions(idx, lo_pos, hi_pos, fast_first_win)
        lo_v = xs[:, lo_p]
        if lo_pos == hi_pos:
            medians[:, b0 : b0 + bc] = lo_v
        else:
            medians[:, b0 : b0 + bc] = _lerp_half(lo_v, xs[:, hi_p])
        if len(fast):
            win_counts[fast, b0 : b0 + bc] = at_least
        for j in np.flatnonzero(~suffix):
            win_counts[j, b0 : b0 + bc] = ws[j][idx].sum(axis=1)
    tail = round((1.0 - level) * 50.0, 12)  # 5.0 for 90 %, not 4.999999999999999
    q = [tail, 100.0 - tail]
    stats = np.sort(np.concatenate([medians, win_counts / n]), axis=1)
    ends = _percentiles_of_sorted(stats, q)
    out[:, [MEDIAN_LO, MEDIAN_HI]] = ends[:k]
    out[:, [WIN_LO, WIN_HI]] = ends[k:]
    return out
