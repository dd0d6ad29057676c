"""Run a nogil numba kernel over index ranges on a small thread pool.

Numba's own `parallel=True` (OpenMP/workqueue) pays a barrier per region that grows badly when
the cores are shared with other processes; plain threads calling `nogil` kernels on chunks
degrade gracefully and let Python size the chunks.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numba

T = TypeVar("T")
_POOL: ThreadPoolExecutor | None = None
# A few chunks per thread so that a thread slowed by another process does not hold up the rest.
CHUNKS_PER_THREAD = 4


def n_threads() -> int:
    configured = int(getattr(numba.config, "NUMBA_NUM_THREADS", 0) or os.cpu_count() or 1)
    return max(1, min(configured, os.cpu_count() or 1))


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=n_threads(), thread_name_prefix="engine")
    return _POOL


def split_map(fn: Callable[[int, int], T], n: int, min_chunk: int = 256) -> list[T]:
    """[fn(a, b) for consecutive ranges covering [0, n)], ranges run on the pool."""
    threads = n_threads()
    chunks = max(1, min(threads * CHUNKS_PER_THREAD, n // max(1, min_chunk)))
    bounds = [n * i // chunks for i in range(chunks + 1)]
    if chunks == 1 or threads == 1:
        return [fn(bounds[i], bounds[i + 1]) for i in range(chunks)]
    futures = [_pool().submit(fn, bounds[i], bounds[i + 1]) for i in range(chunks)]
    return [f.result() for f in futures]
