"""Turn what each stage found wrong into rows of the `errors` artifact."""

from __future__ import annotations

import pandas as pd

from quantbot_assets.schemas import ERRORS

ERROR_COLUMNS = ERRORS.names


def error_frame(
    rows: pd.DataFrame, *, run_id: str, stage: str, level: str = "warning"
) -> pd.DataFrame:
    """Fill the ERRORS columns from whatever subset `rows` has."""
    out = pd.DataFrame(index=range(len(rows)))
    source = rows.reset_index(drop=True)
    for name in ERROR_COLUMNS:
        if name in source.columns:
            out[name] = source[name]
        else:
            out[name] = None
    out["run_id"] = run_id
    out["stage"] = source["stage"] if "stage" in source.columns else stage
    out["level"] = source["level"] if "level" in source.columns else level
    out["ts_ms"] = out["ts_ms"].astype("Int64")
    return out[ERROR_COLUMNS]


def excluded_call_errors(
    excluded: pd.DataFrame, alerts: pd.DataFrame, *, run_id: str
) -> pd.DataFrame:
    """One warning per call the truth layer excluded (no_candles, invalid_entry_price)."""
    rows = excluded.merge(
        alerts[["call_id", "chain", "mint", "alert_ts_ms"]], on="call_id", how="left"
    ).rename(columns={"alert_ts_ms": "ts_ms"})
    rows["detail"] = "call excluded from paths and trades"
    return error_frame(rows, run_id=run_id, stage="paths")


def concat_errors(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return error_frame(pd.DataFrame(columns=ERROR_COLUMNS), run_id="", stage="")
    return pd.concat(frames, ignore_index=True)[ERROR_COLUMNS]
