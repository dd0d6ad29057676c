"""When a day's truth layer may be reused: same inputs, same parameters, a completed run.

A day's truth layer (its `alerts`, `paths`, `errors` and the prepared candle
windows in `features/`) is identified by its `truth_key`: a hash of the
truth parameters, the calls source, the content of the day's calls, and the
candle source. Every `paths` materialization records the key of its day. A
policy or frontier run computes the key of each of its days from the calls it
reads now and reuses an earlier truth layer only when the keys are equal and
the run that wrote it completed (`_SUCCESS`); otherwise it computes the truth
layer itself, in the same run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from quantbot_assets.engine.candles import PreparedCandles
from quantbot_assets.engine.features import windows_digest
from quantbot_assets.params import TRUTH_KEYS, WINDOW_KEYS, content_hash, subset
from quantbot_assets.rundir import SUCCESS_MARKER

# How many of a day's newest `paths` materializations are searched for a match.
SEARCH_DEPTH = 50


def call_days(alert_ts_ms: pd.Series) -> pd.Series:
    """The UTC day (YYYY-MM-DD) of each alert: the day partition a call belongs to."""
    day_number = alert_ts_ms.to_numpy(dtype="int64") // 86_400_000
    numbers, inverse = np.unique(day_number, return_inverse=True)
    names = np.asarray(pd.to_datetime(numbers, unit="D").strftime("%Y-%m-%d"), dtype=object)
    return pd.Series(names[inverse], index=alert_ts_ms.index, dtype="str")


_CALL_COLUMNS = ["call_id", "mint", "caller_name", "chain", "alert_ts_ms", "created_at"]


def _call_row_hashes(calls: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(one uint64 per call row, the rows' stable order by call_id): what calls_hash digests."""
    frame = calls[_CALL_COLUMNS].astype(
        {"call_id": str, "mint": str, "caller_name": str, "chain": str, "alert_ts_ms": "int64"}
    )
    frame = frame.assign(created_at=frame["created_at"].astype("string").fillna(""))
    frame = frame.reset_index(drop=True)
    rows = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    order = frame.sort_values("call_id", kind="stable").index.to_numpy()
    return rows, order


def _digest(row_hashes: np.ndarray) -> str:
    return content_hash([len(row_hashes), row_hashes.tobytes().hex()])


def calls_hash(calls: pd.DataFrame) -> str:
    """Content hash of a set of calls, independent of row order and dtype details: the row
    hashes of the calls sorted by call_id (stable)."""
    rows, order = _call_row_hashes(calls)
    return _digest(rows[order])


def calls_hash_by_day(calls: pd.DataFrame, days: list[str]) -> dict[str, str]:
    """calls_hash of each day's calls (a day without calls too), hashing every row once."""
    rows, order = _call_row_hashes(calls)
    day_of = call_days(calls["alert_ts_ms"]).to_numpy(dtype=object)[order]
    ordered = rows[order]
    return {day: _digest(ordered[day_of == day]) for day in days}


def rejects_hash(rejects: pd.DataFrame) -> str:
    """Content hash of rejected input rows, independent of row order."""
    frame = rejects.astype("string").fillna("")
    frame = frame.sort_values(list(frame.columns), kind="stable", ignore_index=True)
    digest = pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()
    return content_hash([len(frame), list(frame.columns), digest.hex()])


@dataclass(frozen=True)
class DataFingerprint:
    """What data a run read, by content (run.json `data_fingerprint`, docs/compatibility.md).

    `calls`: `calls_hash` of every call the run read (and of the rows it rejected);
    `candles`: `engine.features.windows_digest` of the bars those calls' windows read, at
    the run's interval (and of the 1m bars a coarser run drills down into). File names and
    times play no part: the same calls and bars give the same fingerprint.
    """

    calls: str
    candles: str

    @property
    def value(self) -> str:
        return content_hash({"calls": self.calls, "candles": self.candles})

    def manifest_fields(self) -> tuple[str, str, str]:
        """(calls_hash, candles_hash, data_fingerprint) as run.json records them."""
        return self.calls, self.candles, self.value

    @classmethod
    def of(
        cls,
        calls: pd.DataFrame,
        rejects: pd.DataFrame | None,
        parts: list[tuple[PreparedCandles, PreparedCandles | None, pd.DataFrame]],
        *,
        entry_delay_ms: int,
        horizon_ms: int,
    ) -> DataFingerprint:
        """`parts`: (candles, 1m candles or None, the calls read from them) of each source."""
        return cls(
            calls=cls.calls_part(calls, rejects),
            candles=cls.candles_part(parts, entry_delay_ms=entry_delay_ms, horizon_ms=horizon_ms),
        )

    @staticmethod
    def calls_part(calls: pd.DataFrame, rejects: pd.DataFrame | None) -> str:
        rejected = rejects_hash(rejects) if rejects is not None and len(rejects) else None
        return content_hash({"calls": calls_hash(calls), "rejects": rejected})

    @staticmethod
    def candles_part(
        parts: list[tuple[PreparedCandles, PreparedCandles | None, pd.DataFrame]],
        *,
        entry_delay_ms: int,
        horizon_ms: int,
    ) -> str:
        windows = {"entry_delay_ms": int(entry_delay_ms), "horizon_ms": int(horizon_ms)}
        coarse = windows_digest([(p, c) for p, _, c in parts], **windows)
        fine_parts = [(f, c) for _, f, c in parts if f is not None]
        fine = windows_digest(fine_parts, **windows) if fine_parts else None
        return content_hash({"bars": coarse, "fine_bars": fine})


@dataclass(frozen=True)
class KnownCandles:
    """The `candles` part of a fingerprint already computed for one truth layer's calls.

    Recorded on every `paths` materialization of that truth layer (`candles_digest`), so a
    run that reads exactly those calls from those prepared windows (a policy run of the
    same days) takes it as it is instead of hashing the same bars again.
    """

    calls: str  # calls_hash of the calls whose windows were digested
    candles: str

    def encode(self) -> str:
        return f"{self.calls}:{self.candles}"

    @classmethod
    def decode(cls, text: object) -> KnownCandles | None:
        parts = str(text or "").split(":")
        return cls(parts[0], parts[1]) if len(parts) == 2 and all(parts) else None


@dataclass(frozen=True)
class TruthIdentity:
    """What a truth layer is computed from, but for the calls themselves."""

    parameters: dict[str, Any]
    calls_source: str
    candle_source: str

    @classmethod
    def of(cls, parameters: dict[str, Any], calls_source: str, candle_source: str) -> TruthIdentity:
        return cls(subset(parameters, TRUTH_KEYS), calls_source, candle_source)

    def key(self, day_calls_hash: str) -> str:
        """The truth key of one day with these calls."""
        return content_hash(
            {
                "parameters": self.parameters,
                "calls_source": self.calls_source,
                "candle_source": self.candle_source,
                "calls": day_calls_hash,
            }
        )

    def features_key(self, run_calls_hash: str) -> str:
        """The key of a run's prepared candle windows (windows depend on fewer parameters)."""
        return content_hash(
            {
                "parameters": {k: self.parameters[k] for k in WINDOW_KEYS},
                "candle_source": self.candle_source,
                "calls": run_calls_hash,
            }
        )

    def day_keys(self, calls: pd.DataFrame, days: list[str]) -> dict[str, str]:
        """The truth key of each day in `days` (a day without calls has one too)."""
        return {day: self.key(digest) for day, digest in calls_hash_by_day(calls, days).items()}


@dataclass(frozen=True)
class ReusableTruth:
    """A completed earlier truth layer of one day that matches a run's truth key."""

    day: str
    run_id: str
    run_dir: Path
    paths_path: Path
    features_path: Path
    fine_path: Path | None  # 1m bars for drill-down, when the run was coarser than 1m
    known_candles: KnownCandles | None = None


def find_reusable_truth(
    instance: dg.DagsterInstance, day: str, truth_key: str
) -> ReusableTruth | None:
    """The newest completed `paths` materialization of `day` with this truth key, if any."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("paths"), asset_partitions=[day]),
        limit=SEARCH_DEPTH,
    ).records
    for record in records:
        materialization = record.asset_materialization
        if materialization is None:
            continue
        metadata = {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}
        if metadata.get("truth_key") != truth_key:
            continue
        run_dir = Path(str(metadata.get("run_dir", "")))
        features = metadata.get("features_path")
        if not features or not (run_dir / SUCCESS_MARKER).is_file():
            continue  # a run killed or failed after writing paths is never reused
        features_path = Path(str(features))
        if not features_path.is_file():
            continue
        fine = str(metadata.get("fine_features_path") or "")
        if fine and not Path(fine).is_file():
            continue
        return ReusableTruth(
            day=day,
            run_id=record.run_id,
            run_dir=run_dir,
            paths_path=Path(str(metadata["path"])),
            features_path=features_path,
            fine_path=Path(fine) if fine else None,
            known_candles=KnownCandles.decode(metadata.get("candles_digest")),
        )
    return None
