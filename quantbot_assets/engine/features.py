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

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from quantbot_assets.engine.calls import call_arrays
from quantbot_assets.engine.candles import (
    PreparedCandles,
    _prepare_unsorted,
    _Raw,
    interval_ms,
)
from quantbot_assets.engine.threads import split_map
from quantbot_assets.engine.windows import window_complete_probe_ms

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


def windows_digest(
    parts: list[tuple[PreparedCandles, pd.DataFrame]],
    *,
    entry_delay_ms: int,
    horizon_ms: int,
) -> str:
    """SHA-256 (hex) of the bars the calls' windows read: for each `(prepared, calls)` part,
    every bar of a call's series with `alert + entry_delay <= ts < alert + horizon + probe`
    (the window and the bars `window_complete` looks for). Bars that several parts or calls
    share count once; bars are ordered by (chain, mint, ts), so the digest depends on the
    content only, not on how the calls were split into parts or on any file's time. Fields
    hashed: ts, open, high, low, close (bit for bit; volume is never read by the engine).

    What is hashed: the (chain, mint) names with bars, in order, their bar counts, and one
    SHA-256 per field of its values in that order (little-endian int64 / float64). One part
    is hashed straight from its arrays, span by span; several parts are gathered, sorted and
    deduplicated first (the same bytes either way)."""
    spans = [_merged_spans(p, c, entry_delay_ms, horizon_ms) for p, c in parts]
    live = [(p, sp) for (p, _), sp in zip(parts, spans, strict=True) if sp is not None]
    digest = hashlib.sha256(b"quantbot.windows.2")
    if not live:
        return digest.hexdigest()
    fields = [hashlib.sha256() for _ in range(5)]
    if len(live) == 1:
        prepared, (names, series, lo, hi) = live[0]
        counts: dict[str, int] = {}
        ranges = list(zip(lo.tolist(), hi.tolist(), strict=True))
        for name, (a, b) in zip(names[series].tolist(), ranges, strict=True):
            counts[name] = counts.get(name, 0) + (b - a)
        columns = _fields(prepared)

        def hash_fields(k0: int, k1: int) -> None:
            # hashlib reads the array slices in place and releases the GIL while it hashes
            for h, column in zip(fields[k0:k1], columns[k0:k1], strict=True):
                for a, b in ranges:
                    h.update(column[a:b].data)

        split_map(hash_fields, len(fields), 1)  # the five fields' hashes on the thread pool
        digest.update("\n".join(counts).encode())
        digest.update(np.array(list(counts.values()), dtype="<i8").tobytes())
    else:
        name_list, code, bar_ts, values = _gathered(live)
        order = np.lexsort((bar_ts, code))
        code, bar_ts = code[order], bar_ts[order]
        first = np.ones(len(code), dtype=bool)
        first[1:] = (code[1:] != code[:-1]) | (bar_ts[1:] != bar_ts[:-1])
        code, bar_ts = code[first], bar_ts[first]
        digest.update("\n".join(name_list).encode())
        digest.update(np.bincount(code, minlength=len(name_list)).astype("<i8").tobytes())
        fields[0].update(bar_ts.astype("<i8").tobytes())
        for h, column in zip(fields[1:], values, strict=True):
            h.update(column[order][first].astype("<f8").tobytes())
    for h in fields:
        digest.update(h.digest())
    return digest.hexdigest()


def _fields(prepared: PreparedCandles) -> list[np.ndarray]:
    return [
        np.ascontiguousarray(prepared.ts, dtype="<i8"),
        *(
            np.ascontiguousarray(x, dtype="<f8")
            for x in (prepared.open, prepared.high, prepared.low, prepared.close)
        ),
    ]


def _merged_spans(
    prepared: PreparedCandles, calls: pd.DataFrame, entry_delay_ms: int, horizon_ms: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """(series names, and per span with bars: series, first row, end row) of the calls'
    windows merged per series; spans ordered by (series name, time). None when no bar."""
    if calls.empty or prepared.n_series == 0:
        return None
    series, alert = call_arrays(calls, prepared)
    have = series >= 0
    series, alert = series[have], alert[have]
    start = alert + int(entry_delay_ms)
    end = alert + int(horizon_ms) + window_complete_probe_ms(prepared.interval_ms)
    names = np.char.add(np.char.add(prepared.chain.astype(str), "\x00"), prepared.mint.astype(str))
    rank = np.empty(len(names), np.int64)
    rank[np.argsort(names, kind="stable")] = np.arange(len(names))
    order = np.lexsort((start, rank[series]))
    span_s: list[int] = []
    span_a: list[int] = []
    span_b: list[int] = []
    cur_s, cur_a, cur_b = -1, 0, 0
    triples = zip(series[order].tolist(), start[order].tolist(), end[order].tolist(), strict=True)
    for s, a, b in triples:
        if s == cur_s and a <= cur_b:
            cur_b = max(cur_b, b)
            continue
        if cur_s >= 0:
            span_s.append(cur_s)
            span_a.append(cur_a)
            span_b.append(cur_b)
        cur_s, cur_a, cur_b = s, a, b
    if cur_s >= 0:
        span_s.append(cur_s)
        span_a.append(cur_a)
        span_b.append(cur_b)
    spans = np.array(span_s, np.int64)
    lo, hi = _span_bounds(prepared, spans, span_a, span_b)
    keep = hi > lo
    if not keep.any():
        return None
    return names, spans[keep], lo[keep], hi[keep]


def _gathered(
    live: list[tuple[PreparedCandles, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]],
) -> tuple[list[str], np.ndarray, np.ndarray, list[np.ndarray]]:
    """Every part's span rows in one set of arrays, with a name code per row."""
    name_list = sorted({n for _, (names, series, _, _) in live for n in names[series].tolist()})
    codes, ts, values = [], [], []
    for prepared, (names, series, lo, hi) in live:
        lengths = hi - lo
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        pick = np.arange(int(lengths.sum()), dtype=np.int64) + np.repeat(lo - starts, lengths)
        code_of = np.searchsorted(np.array(name_list, dtype=object), names[series].astype(object))
        codes.append(np.repeat(code_of.astype(np.int64), lengths))
        ts.append(prepared.ts[pick])
        values.append(
            [x[pick] for x in (prepared.open, prepared.high, prepared.low, prepared.close)]
        )
    return (
        name_list,
        np.concatenate(codes),
        np.concatenate(ts),
        [np.concatenate([v[k] for v in values]) for k in range(4)],
    )


def _span_bounds(
    prepared: PreparedCandles, series: np.ndarray, start: list[int], end: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Row bounds [lo, hi) of each span: series `series[k]`'s bars with start <= ts < end."""
    lo = np.empty(len(series), np.int64)
    hi = np.empty(len(series), np.int64)
    for k, s in enumerate(series.tolist()):
        a, b = int(prepared.offsets[s]), int(prepared.offsets[s + 1])
        lo[k] = a + int(np.searchsorted(prepared.ts[a:b], start[k], side="left"))
        hi[k] = a + int(np.searchsorted(prepared.ts[a:b], end[k], side="left"))
    return lo, hi
