"""Asset checks for the invariants that matter: calls conserved, returns within peaks, schemas.

The checks of a run's partitions run as one step per layer (a multi-asset
check) over every partition of the run, reading the files the
materializations recorded.
"""

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq

from quantbot_assets.io_manager import (
    latest_materialization_metadata,
    read_artifact,
    read_partitions,
)
from quantbot_assets.partitions import (
    day_partitions_def,
    day_policy_partitions_def,
    month_partitions_def,
)
from quantbot_assets.schemas import ARTIFACT_SCHEMAS
from quantbot_assets.truth_identity import truth_paths_file

# Float tolerance for comparing a return with the peak it cannot exceed.
RETURN_TOLERANCE_BPS = 1e-6
EXCLUSION_REASONS = ("no_candles", "invalid_entry_price")


def _keys(context: dg.AssetCheckExecutionContext) -> list[str]:
    """Every partition key the check covers (a single-run backfill checks them together)."""
    return [str(key) for key in context.partition_keys]


def _read(context: dg.AssetCheckExecutionContext, asset: str, keys: list[str]) -> pd.DataFrame:
    return read_partitions(context.instance, dg.AssetKey(asset), list(keys))


def schema_result(context: dg.AssetCheckExecutionContext, asset: str) -> dg.AssetCheckResult:
    """Pass when the newest file of every covered partition has exactly the declared schema."""
    paths = sorted(
        {
            str(latest_materialization_metadata(context.instance, dg.AssetKey(asset), key)["path"])
            for key in _keys(context)
        }
    )
    expected = ARTIFACT_SCHEMAS[asset]
    differences: list[str] = []
    for path in paths:
        schema = pq.read_schema(Path(path))
        differences += [
            f"{f.name}: {schema.field(f.name).type if f.name in schema.names else 'missing'} "
            f"!= {f.type}"
            for f in expected
            if f.name not in schema.names or schema.field(f.name).type != f.type
        ]
        differences += [f"unexpected {name}" for name in schema.names if name not in expected.names]
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=f"{asset}_schema_as_declared",
        passed=not differences,
        metadata={"files": ", ".join(paths), "differences": ", ".join(differences) or "none"},
    )


def calls_conserved_result(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    """Every call of the days is entered (paths) or excluded with a reason, never both."""
    days = _keys(context)
    calls = set(_read(context, "alerts", days)["call_id"])
    entered = set(_read(context, "paths", days)["call_id"])
    errors = _read(context, "errors", days)
    excluded = set(errors.loc[errors["reason"].isin(EXCLUSION_REASONS), "call_id"])
    lost, both, unknown = (
        calls - entered - excluded,
        entered & excluded,
        (entered | excluded) - calls,
    )
    return dg.AssetCheckResult(
        asset_key="paths",
        check_name="paths_calls_conserved",
        passed=not (lost or both or unknown),
        metadata={
            "days": len(days),
            "calls": len(calls),
            "entered": len(entered),
            "excluded": len(excluded),
            "lost": len(lost),
            "entered_and_excluded": len(both),
            "unknown": len(unknown),
        },
    )


def _truth_used(context: dg.AssetCheckExecutionContext, keys: list[str]) -> pd.DataFrame:
    """The `paths` rows each trades partition was computed from (its `truth_run_id`)."""
    files: dict[Path, set[str]] = {}
    for key in keys:
        metadata = latest_materialization_metadata(context.instance, dg.AssetKey("trades"), key)
        day = key.split("|", 1)[0]
        found = truth_paths_file(context.instance, day, str(metadata.get("truth_run_id", "")))
        if found is not None:
            files.setdefault(found, set()).add(day)
    frames = [read_artifact(path, "paths") for path in files]
    if not frames:
        return ARTIFACT_SCHEMAS["paths"].empty_table().to_pandas()
    return pd.concat(frames, ignore_index=True).drop_duplicates("call_id")


def return_within_peak_result(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    """No trade's gross return is above its call's peak (peak_multiple - 1)."""
    keys = _keys(context)
    trades = _read(context, "trades", keys)[["call_id", "entry_px", "exit_px"]]
    paths = _truth_used(context, keys)[["call_id", "peak_multiple"]]
    joined = trades.merge(paths, on="call_id", how="left")
    gross = (joined["exit_px"] / joined["entry_px"] - 1.0) * 10_000
    above = joined[gross > (joined["peak_multiple"] - 1.0) * 10_000 + RETURN_TOLERANCE_BPS]
    missing = int(joined["peak_multiple"].isna().sum())
    return dg.AssetCheckResult(
        asset_key="trades",
        check_name="trades_return_within_peak",
        passed=above.empty and missing == 0,
        metadata={"trades": len(joined), "above_peak": len(above), "without_truth_row": missing},
    )


def _spec(
    asset: str, name: str, partitions_def: dg.PartitionsDefinition, text: str
) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(name, asset=asset, partitions_def=partitions_def, description=text)


def _schema_spec(asset: str, partitions_def: dg.PartitionsDefinition) -> dg.AssetCheckSpec:
    return _spec(
        asset,
        f"{asset}_schema_as_declared",
        partitions_def,
        f"The {asset} file has exactly the declared Arrow schema.",
    )


@dg.multi_asset_check(
    name="day_artifact_checks",
    specs=[
        _spec(
            "paths",
            "paths_calls_conserved",
            day_partitions_def,
            "Every call of the day is entered (paths) or excluded with a reason (errors).",
        ),
        _schema_spec("alerts", day_partitions_def),
        _schema_spec("paths", day_partitions_def),
        _schema_spec("errors", day_partitions_def),
    ],
    can_subset=True,
)
def day_artifact_checks(context: dg.AssetCheckExecutionContext) -> Iterator[dg.AssetCheckResult]:
    """Calls conserved and schemas of the day's inputs and truth layer."""
    selected = {key.name for key in context.selected_asset_check_keys}
    if "paths_calls_conserved" in selected:
        yield calls_conserved_result(context)
    for asset in ("alerts", "paths", "errors"):
        if f"{asset}_schema_as_declared" in selected:
            yield schema_result(context, asset)


@dg.multi_asset_check(
    name="policy_artifact_checks",
    specs=[
        _spec(
            "trades",
            "trades_return_within_peak",
            day_policy_partitions_def,
            "No trade's gross return is above its call's peak (peak_multiple - 1).",
        ),
        _schema_spec("trades", day_policy_partitions_def),
        _schema_spec("summary", day_policy_partitions_def),
    ],
    can_subset=True,
)
def policy_artifact_checks(context: dg.AssetCheckExecutionContext) -> Iterator[dg.AssetCheckResult]:
    """Returns within peaks and schemas of one policy's trades and summary on one day."""
    selected = {key.name for key in context.selected_asset_check_keys}
    if "trades_return_within_peak" in selected:
        yield return_within_peak_result(context)
    for asset in ("trades", "summary"):
        if f"{asset}_schema_as_declared" in selected:
            yield schema_result(context, asset)


@dg.multi_asset_check(
    name="frontier_checks",
    specs=[_schema_spec("frontier", month_partitions_def)],
)
def frontier_checks(context: dg.AssetCheckExecutionContext) -> Iterator[dg.AssetCheckResult]:
    """The frontier file has exactly the declared schema."""
    yield schema_result(context, "frontier")
