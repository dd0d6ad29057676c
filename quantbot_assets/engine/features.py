"""Prepared candles on disk ("features"): what the kernels read, without rescanning the store.

`save_prepared` writes a `PreparedCandles` as one Arrow IPC file: a single record batch of the
bar columns (ts, open, high, low, close, volume; floats bit for bit, NaN stays NaN) and, in the
schema metadata, the interval and the series table (chain, mint, first bar, bar count) as an
Arrow IPC stream. `load_prepared` memory-maps the file: uncompressed, the columns become numpy
arrays without a copy, so loading costs the series table plus the pages the kernels touch.

The Dagster layer stores one file per (day, interval, horizon, entry delay); `merge_prepared`
joins several days into one `PreparedCandles` for a month frontier (bars of a series that two
days both hold are one bar; they must be equal, which they are when both days were loaded
over `windows.candle_load_range`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from quantbot_assets.engine.candles import (
    PreparedCandles,
    _prepare_unsorted,
    _Raw,
    interval_ms,
)

FEATURES_VERSION = "1"
_BAR_COLUMNS = ("ts", "open", "high", "low", "close", "volume")


def _series_table(prepared: PreparedCandles) -> bytes:
    table = pa.table(
        {
            "chain": pa.array(prepared.chain.astype(str), pa.string()),
            "mint": pa.array(prepared.mint.astype(str), pa.string()),
            "start": pa.array(prepared.offsets[:-1], pa.int64()),
            "count": pa.array(np.diff(prepared.offsets), pa.int64()),
        }
    )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def save_prepared(
    prepared: PreparedCandles, path: str | Path, *, compression: str | None = None
) -> None:
    """Write `prepared` to `path` (Arrow IPC file; compression None or "lz4")."""
    if compression not in (None, "lz4"):
        raise ValueError(f"compression: expected None or 'lz4', got {compression!r}")
    arrays = [
        pa.array(
            np.ascontiguousarray(getattr(prepared, k)), pa.int64() if k == "ts" else pa.float64()
        )
        for k in _BAR_COLUMNS
    ]
    metadata = {
        b"quantbot.features": FEATURES_VERSION.encode(),
        b"interval": prepared.interval.encode(),
        b"series": _series_table(prepared),
    }
    batch = pa.record_batch(arrays, names=list(_BAR_COLUMNS))
    schema = batch.schema.with_metadata(metadata)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    options = pa.ipc.IpcWriteOptions(compression=compression)
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, schema, options=options) as w:
        w.write_batch(batch.replace_schema_metadata(metadata))
    tmp.replace(path)  # readers never see a half-written file


def load_prepared(path: str | Path, *, keys: pd.DataFrame | None = None) -> PreparedCandles:
    """The `PreparedCandles` saved at `path`; with `keys` (columns chain, mint) only those
    series (in the file's order; keys the file lacks are skipped)."""
    source = pa.memory_map(str(path), "r")
    reader = pa.ipc.open_file(source)
    meta = reader.schema.metadata or {}
    if meta.get(b"quantbot.features") != FEATURES_VERSION.encode():
        raise ValueError(f"{path}: not a prepared-candles file (version {FEATURES_VERSION})")
    interval = meta[b"interval"].decode()
    interval_ms(interval)
    series = pa.ipc.open_stream(meta[b"series"]).read_all()
    chain = np.asarray(series.column("chain").to_pylist(), dtype=object)
    mint = np.asarray(series.column("mint").to_pylist(), dtype=object)
    start = series.column("start").to_numpy()
    count = series.column("count").to_numpy()
    if reader.num_record_batches == 1:
        batch = reader.get_batch(0)
        cols = [batch.column(k).to_numpy() for k in _BAR_COLUMNS]
    else:  # an empty file has no batch
        table = reader.read_all()
        cols = [table.column(k).to_numpy() for k in _BAR_COLUMNS]
    offsets = np.zeros(len(start) + 1, np.int64)
    np.cumsum(count, out=offsets[1:])
    if keys is not None:
        index = pd.MultiIndex.from_arrays([chain, mint])
        wanted = pd.MultiIndex.from_arrays(
            [keys["chain"].astype(str).to_numpy(object), keys["mint"].astype(str).to_numpy(object)]
        )
        pick = np.flatnonzero(index.isin(wanted))
        rows = _ranges(start[pick], count[pick])
        cols = [c[rows] for c in cols]
        chain, mint, count = chain[pick], mint[pick], count[pick]
        offsets = np.zeros(len(pick) + 1, np.int64)
        np.cumsum(count, out=offsets[1:])
    ts, o, h, lo, c, v = cols
    return PreparedCandles(interval, ts, o, h, lo, c, v, offsets, chain, mint)


def _ranges(start: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Concatenation of range(start[k], start[k] + count[k])."""
    total = int(count.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    first = np.repeat(start - np.concatenate([[0], np.cumsum(count)[:-1]]), count)
    return first + np.arange(total, dtype=np.int64)


def merge_prepared(parts: list[PreparedCandles]) -> PreparedCandles:
    """One `PreparedCandles` holding every series of `parts` (same interval), each series'
    bars in time order once. Bars that several parts hold must be equal (bit for bit, NaN
    equal to NaN); a disagreement raises ValueError. Series come in order of first
    appearance over the parts."""
    if not parts:
        raise ValueError("parts: nothing to merge")
    interval = parts[0].interval
    if any(p.interval != interval for p in parts):
        raise ValueError(f"parts: intervals differ: {sorted({p.interval for p in parts})}")
    chain_codes, chain_cats = pd.factorize(np.concatenate([p.chain for p in parts]))
    mint_codes, mint_cats = pd.factorize(np.concatenate([p.mint for p in parts]))
    counts = np.concatenate([np.diff(p.offsets) for p in parts])
    raw = _Raw(
        np.repeat(chain_codes, counts),
        np.repeat(mint_codes, counts),
        *(np.concatenate([getattr(p, k) for p in parts]) for k in _BAR_COLUMNS),
    )
    runs = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=runs[1:])
    merged, issues = _prepare_unsorted(
        raw,
        runs,
        np.asarray(chain_cats, dtype=object),
        np.asarray(mint_cats, dtype=object),
        interval,
        False,
    )
    clash = [x for x in issues if (x["reason"] == "conflicting_duplicate_bar").any()]
    if clash:
        first = clash[0][clash[0]["reason"] == "conflicting_duplicate_bar"].iloc[0]
        raise ValueError(
            f"parts disagree on the bar {first['chain']}/{first['mint']} at {first['ts_ms']}"
        )
    return merged
