"""Asset checks for the invariants that matter: calls conserved, returns within peaks, schemas.

The checks of a run's partitions run as one step per layer (a multi-asset
check) over every partition of the run, reading the files the
materializations recorded. Each outcome is also written to the run
directory (`checks/<name>.json`, an `error` outcome for a check that raised),
so the catalog registers the run only once its checks have run.
"""

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq

from quantbot_assets.defs.backtest.partitions import (
    day_and_policy,
    day_partitions_def,
    day_policy_partitions_def,
    month_partitions_def,
)
from quantbot_assets.io_manager import latest_materialization_metadata, read_files
from quantbot_assets.run_directories import RunDirectories
from quantbot_assets.rundir import (
    MANIFEST_FILE,
    CheckRecord,
    RunManifest,
    read_manifest,
    utc_now_iso,
    write_check_record,
)
from quantbot_assets.schemas import ARTIFACT_SCHEMAS

# Float tolerance for comparing a return with the peak it cannot exceed.
RETURN_TOLERANCE_BPS = 1e-6
EXCLUSION_REASONS = ("no_candles", "invalid_entry_price")


def _keys(context: dg.AssetCheckExecutionContext) -> list[str]:
    """Every partition key the check covers (a single-run backfill checks them together)."""
    return [str(key) for key in context.partition_keys]


def _manifest(
    context: dg.AssetCheckExecutionContext, run_dirs: RunDirectories
) -> RunManifest | None:
    try:
        return read_manifest(run_dirs.run_dir(context.instance, context.run.run_id))
    except (OSError, ValueError):
        return None


def _files(
    context: dg.AssetCheckExecutionContext, run_dirs: RunDirectories, asset: str, keys: list[str]
) -> dict[Path, list[str]]:
    """The file holding each key: this run's own, when it wrote them all (no lookups)."""
    manifest = _manifest(context, run_dirs)
    entry = manifest.artifacts.get(asset) if manifest else None
    if entry is not None and set(keys) <= set(entry.all_partition_keys()):
        return {run_dirs.run_dir(context.instance, context.run.run_id) / entry.path: keys}
    files: dict[Path, list[str]] = {}
    for key in keys:
        metadata = latest_materialization_metadata(context.instance, dg.AssetKey(asset), key)
        files.setdefault(Path(str(metadata["path"])), []).append(key)
    return files


def _read(
    context: dg.AssetCheckExecutionContext, run_dirs: RunDirectories, asset: str, keys: list[str]
) -> pd.DataFrame:
    return read_files(_files(context, run_dirs, asset, keys), asset)


def schema_result(
    context: dg.AssetCheckExecutionContext, run_dirs: RunDirectories, asset: str
) -> dg.AssetCheckResult:
    """Pass when the newest file of every covered partition has exactly the declared schema."""
    paths = sorted(str(p) for p in _files(context, run_dirs, asset, _keys(context)))
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


def calls_conserved_result(
    context: dg.AssetCheckExecutionContext, run_dirs: RunDirectories
) -> dg.AssetCheckResult:
    """Every call of the days is entered (paths) or excluded with a reason, never both."""
    days = _keys(context)
    calls = set(_read(context, run_dirs, "alerts", days)["call_id"])
    entered = set(_read(context, run_dirs, "paths", days)["call_id"])
    errors = _read(context, run_dirs, "errors", days)
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


def _truth_used(
    context: dg.AssetCheckExecutionContext, run_dirs: RunDirectories, keys: list[str]
) -> pd.DataFrame:
    """The `paths` rows the trades were computed from (run.json's truth_sources)."""
    manifest = _manifest(context, run_dirs)
    sources = manifest.truth_sources if manifest else {}
    days = sorted({day_and_policy(key)[0] for key in keys})
    files: dict[Path, list[str | None]] = {}
    for day in days:
        if day in sources:
            files.setdefault(Path(sources[day]), []).append(day)
    if len(files) == 0:
        return ARTIFACT_SCHEMAS["paths"].empty_table().to_pandas()
    return read_files(files, "paths")


def return_within_peak_result(
    context: dg.AssetCheckExecutionContext, run_dirs: RunDirectories
) -> dg.AssetCheckResult:
    """No trade's gross return is above its call's peak (peak_multiple - 1)."""
    keys = _keys(context)
    trades = _read(context, run_dirs, "trades", keys)[["call_id", "entry_px", "exit_px"]]
    paths = _truth_used(context, run_dirs, keys)[["call_id", "peak_multiple"]]
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


def _recorded(
    context: dg.AssetCheckExecutionContext,
    run_dirs: RunDirectories,
    results: Iterator[dg.AssetCheckResult],
) -> Iterator[dg.AssetCheckResult]:
    """Yield `results`, writing each to this run's `checks/` first.

    Only a run that has a run directory records (a run of checks alone has
    none). A check that raises gets an `error` record, as does every selected
    check not yet recorded, and the exception goes on.
    """
    run_dir = run_dirs.run_dir(context.instance, context.run.run_id)
    recording = (run_dir / MANIFEST_FILE).exists()
    done: set[str] = set()
    try:
        for result in results:
            name = result.check_name or ""
            if recording:
                passed = bool(result.passed)
                write_check_record(
                    run_dir,
                    CheckRecord(
                        check_name=name,
                        asset_key=result.asset_key.to_user_string() if result.asset_key else None,
                        outcome="passed" if passed else "failed",
                        passed=passed,
                        severity=result.severity.value if result.severity else None,
                        metadata={
                            k: str(getattr(v, "value", v)) for k, v in result.metadata.items()
                        },
                        recorded_at=utc_now_iso(),
                    ),
                )
            done.add(name)
            yield result
    except Exception as exc:
        if recording:
            for key in context.selected_asset_check_keys:
                if key.name not in done:
                    write_check_record(
                        run_dir,
                        CheckRecord(
                            check_name=key.name,
                            asset_key=key.asset_key.to_user_string(),
                            outcome="error",
                            passed=False,
                            detail=f"{type(exc).__name__}: {exc}"[:500],
                            recorded_at=utc_now_iso(),
                        ),
                    )
        raise


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
def day_artifact_checks(
    context: dg.AssetCheckExecutionContext, run_dirs: RunDirectories
) -> Iterator[dg.AssetCheckResult]:
    """Calls conserved and schemas of the days' inputs and truth layer."""
    yield from _recorded(context, run_dirs, _day_results(context, run_dirs))


def _day_results(
    context: dg.AssetCheckExecutionContext, run_dirs: RunDirectories
) -> Iterator[dg.AssetCheckResult]:
    selected = {key.name for key in context.selected_asset_check_keys}
    if "paths_calls_conserved" in selected:
        yield calls_conserved_result(context, run_dirs)
    for asset in ("alerts", "paths", "errors"):
        if f"{asset}_schema_as_declared" in selected:
            yield schema_result(context, run_dirs, asset)


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
def policy_artifact_checks(
    context: dg.AssetCheckExecutionContext, run_dirs: RunDirectories
) -> Iterator[dg.AssetCheckResult]:
    """Returns within peaks and schemas of the policies' trades and summaries."""
    yield from _recorded(context, run_dirs, _policy_results(context, run_dirs))


def _policy_results(
    context: dg.AssetCheckExecutionContext, run_dirs: RunDirectories
) -> Iterator[dg.AssetCheckResult]:
    selected = {key.name for key in context.selected_asset_check_keys}
    if "trades_return_within_peak" in selected:
        yield return_within_peak_result(context, run_dirs)
    for asset in ("trades", "summary"):
        if f"{asset}_schema_as_declared" in selected:
            yield schema_result(context, run_dirs, asset)


@dg.multi_asset_check(
    name="frontier_checks",
    specs=[_schema_spec("frontier", month_partitions_def)],
)
def frontier_checks(
    context: dg.AssetCheckExecutionContext, run_dirs: RunDirectories
) -> Iterator[dg.AssetCheckResult]:
    """The frontier file has exactly the declared schema."""
    yield from _recorded(context, run_dirs, _frontier_results(context, run_dirs))


def _frontier_results(
    context: dg.AssetCheckExecutionContext, run_dirs: RunDirectories
) -> Iterator[dg.AssetCheckResult]:
    yield schema_result(context, run_dirs, "frontier")


@dg.multi_asset_check(
    name="walk_forward_checks",
    specs=[_schema_spec("walk_forward", month_partitions_def)],
)
def walk_forward_checks(
    context: dg.AssetCheckExecutionContext, run_dirs: RunDirectories
) -> Iterator[dg.AssetCheckResult]:
    """The walk-forward file has exactly the declared schema."""
    yield from _recorded(context, run_dirs, _walk_forward_results(context, run_dirs))


def _walk_forward_results(
    context: dg.AssetCheckExecutionContext, run_dirs: RunDirectories
) -> Iterator[dg.AssetCheckResult]:
    yield schema_result(context, run_dirs, "walk_forward")
