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

Vectorised: the running count of each row of I over the positions 0 .. n gives, for every
sample of the block, the two order statistics of the median and (with the wins a suffix of
the sorted sample, as for returns > 0) the win count by a lookup, without sorting I; a
block of many policies costs little more than one.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

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
    for b0 in range(0, resamples, step):
        bc = min(step, resamples - b0)
        idx = rng.integers(0, n, size=(bc, n))
        # below[b, v] = how many positions of resample b are < v (v = 0 .. n): one bincount
        # and a running sum per row, no sort
        rows = (np.arange(bc, dtype=np.int64) * (n + 1))[:, None]
        below = np.bincount((idx + 1 + rows).ravel(), minlength=bc * (n + 1))
        below = below.reshape(bc, n + 1).cumsum(axis=1)
        # the r-th smallest position (0-based) is the largest v with below[b, v] <= r
        lo_v = xs[:, (below <= lo_pos).sum(axis=1) - 1]
        if lo_pos == hi_pos:
            medians[:, b0 : b0 + bc] = lo_v
        else:
            hi_v = xs[:, (below <= hi_pos).sum(axis=1) - 1]
            medians[:, b0 : b0 + bc] = _lerp_half(lo_v, hi_v)
        if len(fast):
            win_counts[fast, b0 : b0 + bc] = n - below[:, first_win[fast]].T
        for j in np.flatnonzero(~suffix):
            win_counts[j, b0 : b0 + bc] = ws[j][idx].sum(axis=1)
    tail = round((1.0 - level) * 50.0, 12)  # 5.0 for 90 %, not 4.999999999999999
    q = [tail, 100.0 - tail]
    stats = np.sort(np.concatenate([medians, win_counts / n]), axis=1)
    ends = _percentiles_of_sorted(stats, q)
    out[:, [MEDIAN_LO, MEDIAN_HI]] = ends[:k]
    out[:, [WIN_LO, WIN_HI]] = ends[k:]
    return out
