"""Asset checks for the invariants that matter: calls conserved, returns within peaks, schemas."""


from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq

from quantbot_assets.assets.policy import DAY_OF_DAY_POLICY
from quantbot_assets.io_manager import latest_materialization_metadata
from quantbot_assets.partitions import (
    day_partitions_def,
    day_policy_partitions_def,
    month_partitions_def,
)
from quantbot_assets.schemas import ARTIFACT_SCHEMAS

# Float tolerance for comparing a return with the peak it cannot exceed.
RETURN_TOLERANCE_BPS = 1e-6


@dg.asset_check(
    asset="paths",
    partitions_def=day_partitions_def,
    additional_ins={"alerts": dg.AssetIn("alerts")},
    description="Every call of the day is entered (paths) or excluded with a reason (errors).",
)
def paths_calls_conserved(
    context: dg.AssetCheckExecutionContext, paths: pd.DataFrame, alerts: pd.DataFrame
) -> dg.AssetCheckResult:
    metadata = latest_materialization_metadata(
        context.instance, dg.AssetKey("paths"), str(context.partition_key)
    )
    errors_path = metadata.get("errors_path")
    excluded = set()
    if errors_path:
        errors = pq.read_table(Path(str(errors_path)), columns=["reason", "call_id"]).to_pandas()
        excluded = set(errors.loc[errors["reason"].isin(["no_candles", "invalid_entry_price"]), "call_id"])
    entered = set(paths["call_id"])
    calls = set(alerts["call_id"])
    lost = calls - entered - excluded
    both = entered & excluded
    unknown = (entered | excluded) - calls
    return dg.AssetCheckResult(
        passed=not (lost or both or unknown),
        metadata={
            "calls": len(calls), "entered": len(entered), "excluded": len(excluded),
            "lost": len(lost), "entered_and_excluded": len(both), "unknown": len(unknown),
        },
    )


@dg.asset_check(
    asset="trades",
    partitions_def=day_policy_partitions_def,
    additional_ins={"paths": dg.AssetIn("paths", partition_mapping=DAY_OF_DAY_POLICY)},
    description="No trade's gross return is above its call's peak (peak_multiple - 1).",
)
def trades_return_within_peak(
    trades: pd.DataFrame, paths: pd.DataFrame
) -> dg.AssetCheckResult:
    joined = trades.merge(paths[["call_id", "peak_multiple"]], on="call_id", how="left")
    gross = (joined["exit_px"] / joined["entry_px"] - 1.0) * 10_000
    ceiling = (joined["peak_multiple"] - 1.0) * 10_000
    above = joined[gross > ceiling + RETURN_TOLERANCE_BPS]
    missing = int(joined["peak_multiple"].isna().sum())
    return dg.AssetCheckResult(
        passed=above.empty and missing == 0,
        metadata={"trades": len(joined), "above_peak": len(above), "without_truth_row": missing},
    )


def _schema_check(asset: str, partitions_def: dg.PartitionsDefinition) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=asset,
        name=f"{asset}_schema_as_declared",
        partitions_def=partitions_def,
        description=f"The {asset} file has exactly the declared Arrow schema.",
    )
    def check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        metadata = latest_materialization_metadata(
            context.instance, dg.AssetKey(asset), str(context.partition_key)
        )
        schema = pq.read_schema(Path(str(metadata["path"])))
        expected = ARTIFACT_SCHEMAS[asset]
        differences = [
            f"{f.name}: {schema.field(f.name).type if f.name in schema.names else 'missing'} != {f.type}"
            for f in expected
            if f.name not in schema.names or schema.field(f.name).type != f.type
        ]
        return dg.AssetCheckResult(
            passed=schema.names == expected.names and not differences,
            metadata={"path": str(metadata["path"]), "differences": ", ".join(differences) or "none"},
        )

    return check


schema_checks = [
    _schema_check("alerts", day_partitions_def),
    _schema_check("paths", day_partitions_def),
    _schema_check("errors", day_partitions_def),
    _schema_check("trades", day_policy_partitions_def),
    _schema_check("summary", day_policy_partitions_def),
    _schema_check("frontier", month_partitions_def),
]
