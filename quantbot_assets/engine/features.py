"""Prepared candles on disk: an Arrow IPC file the kernels read back without re-sorting."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa

from quantbot_assets.engine.candles import PreparedCandles

_FIELDS = ("ts", "open", "high", "low", "close", "volume")


def save_prepared(prepared: PreparedCandles, path: Path) -> int:
    """Write `prepared` to `path` (Arrow IPC, written whole then renamed); return its bytes."""
    table = pa.table({name: getattr(prepared, name) for name in _FIELDS})
    meta = {
        "interval": prepared.interval,
        "offsets": prepared.offsets.tolist(),
        "chain": [str(c) for c in prepared.chain],
        "mint": [str(m) for m in prepared.mint],
    }
    table = table.replace_schema_metadata({"quantbot.prepared": json.dumps(meta)})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    os.replace(tmp, path)
    return path.stat().st_size


def load_prepared(path: Path) -> PreparedCandles:
    """Read prepared candles written by `save_prepared` (memory-mapped, no copies of the bars)."""
    with pa.memory_map(str(path), "r") as source:
        table = pa.ipc.open_file(source).read_all()
    meta = json.loads(table.schema.metadata[b"quantbot.prepared"])
    arrays = {name: table.column(name).to_numpy() for name in _FIELDS}
    return PreparedCandles(
        meta["interval"],
        arrays["ts"],
        arrays["open"],
        arrays["high"],
        arrays["low"],
        arrays["close"],
        arrays["volume"],
        np.asarray(meta["offsets"], dtype=np.int64),
        np.asarray(meta["chain"], dtype=object),
        np.asarray(meta["mint"], dtype=object),
    )
