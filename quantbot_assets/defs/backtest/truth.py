"""The truth layer: each day's calls (`alerts`), what the price did next (`paths`), `errors`.

One step computes all three for every day of its run: the calls of the whole
range are read in one query, the candles in one scan and prepared once, and
the prepared windows are stored in the run directory's `features/` for the
policy and frontier runs that reuse this truth layer (see truth_identity).
"""

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from quantbot_assets.artifact_tables import to_arrow
from quantbot_assets.defs.backtest.artifact_assets import artifact_multi_asset
from quantbot_assets.defs.backtest.lookahead import (
    lookahead_check_result,
    lookahead_spec,
    probe_calls,
    raise_if_failed,
)
from quantbot_assets.defs.backtest.partitions import day_backfill_policy, day_partitions_def
from quantbot_assets.engine import PreparedCandles, compute_paths, prepare_candles
from quantbot_assets.engine.candles import interval_ms, resample_prepared
from quantbot_assets.engine.features import load_prepared, save_prepared
from quantbot_assets.engine.windows import candle_load_range
from quantbot_assets.error_rows import concat_errors, error_frame, excluded_call_errors
from quantbot_assets.params import params_hash
from quantbot_assets.reports import counts_table, histogram_markdown, markdown_table
from quantbot_assets.resources import BacktestParams, CallsSourceResource, CandleSourceResource
from quantbot_assets.run_directories import RunDirectories
from quantbot_assets.run_directory import ArtifactFrame, RunDirectory
from quantbot_assets.rundir import FeaturesEntry
from quantbot_assets.schemas import ARTIFACT_SCHEMAS
from quantbot_assets.sources.calls import CallsLoad
from quantbot_assets.truth_identity import (
    DataFingerprint,
    KnownCandles,
    TruthIdentity,
    call_days,
    calls_hash,
    find_reusable_truth,
)

FEATURES_DIR = "features"


def load_day_candles(
    candle_source: CandleSourceResource, calls: pd.DataFrame, params: BacktestParams
) -> pd.DataFrame:
    """Bars of the calls' series that their windows need: from the first alert (plus the
    entry delay) to past the last window's end (whole coarse bars, and the probe that
    decides `window_complete`)."""
    keys = calls[["chain", "mint"]].drop_duplicates()
    span = candle_load_range(
        calls["alert_ts_ms"].to_numpy(),
        interval_ms=interval_ms(params.interval),
        horizon_ms=params.horizon_ms,
        entry_delay_ms=params.entry_delay_ms,
    )
    start, end = span if span is not None else (0, 0)
    return candle_source.load(keys, start, end)


def truth_identity(
    params: BacktestParams, calls_source: CallsSourceResource, candle_source: CandleSourceResource
) -> TruthIdentity:
    return TruthIdentity.of(params.all_params(), calls_source.identity(), candle_source.identity())


@dataclass
class TruthLayer:
    """A truth layer computed for some days: its three artifacts and its prepared windows."""

    days: list[str]
    calls: pd.DataFrame
    paths: pd.DataFrame
    errors: pd.DataFrame
    excluded: pd.DataFrame
    prepared: PreparedCandles
    truth_keys: dict[str, str]
    features: FeaturesEntry
    features_path: Path
    fine: PreparedCandles | None  # the 1m bars, for drill-down in runs coarser than 1m
    fine_path: Path | None
    fine_features: FeaturesEntry | None
    bars_loaded: int
    candle_issues: int
    data: DataFingerprint
    timing: dict[str, float] = field(default_factory=dict)


def _candle_issue_days(issues: pd.DataFrame, calls: pd.DataFrame) -> pd.Series:
    """A candle problem belongs to the day of the first call on its series."""
    if issues.empty:
        return pd.Series([], dtype=object)
    first = (
        calls.assign(day=call_days(calls["alert_ts_ms"]))
        .groupby(["chain", "mint"], observed=True)["day"]
        .min()
        .rename("day")
        .reset_index()
    )
    keys = issues[["chain", "mint"]].astype(object)
    return keys.merge(first.astype(object), on=["chain", "mint"], how="left")["day"]


def _only_minutes(candles: pd.DataFrame) -> bool:
    return bool(len(candles)) and bool((candles["interval"] == "1m").all())


def compute_truth(
    loaded: CallsLoad,
    days: list[str],
    *,
    identity: TruthIdentity,
    candle_source: CandleSourceResource,
    params: BacktestParams,
    run_id: str,
    run_dir: Path,
) -> TruthLayer:
    """The truth layer of `days` from their calls: one candle scan, one preparation."""
    calls = loaded.calls
    t0 = time.perf_counter()
    candles = load_day_candles(candle_source, calls, params)
    t1 = time.perf_counter()
    bars_loaded = len(candles)
    fine: PreparedCandles | None = None
    if params.interval != "1m" and _only_minutes(candles):
        # One preparation of the 1m bars serves both: the run's bars are resampled from
        # them (what prepare_candles does for a 1m store) and they are the drill-down's.
        fine, issues = prepare_candles(candles, interval="1m")
        del candles  # a month of 1m bars is about a gigabyte: free it before what follows
        prepared = resample_prepared(fine, params.interval)
    else:
        prepared, issues = prepare_candles(candles, interval=params.interval)
        if params.interval != "1m":
            # Drill-down resolves ambiguous coarse bars from the 1m bars inside them.
            fine, _fine_issues = prepare_candles(candles, interval="1m")
        del candles
    paths, excluded = compute_paths(calls, prepared, run_id=run_id, **params.truth_params())
    t2 = time.perf_counter()
    issue_rows = error_frame(issues.assign(source=candle_source.path), run_id=run_id, stage="paths")
    issue_rows["day"] = _candle_issue_days(issues, calls).to_numpy()
    rejects = error_frame(loaded.rejects, run_id=run_id, stage="alerts")
    errors = concat_errors(
        [rejects, excluded_call_errors(excluded, calls, run_id=run_id), issue_rows]
    )
    call_rows = errors["day"].isna() & errors["ts_ms"].notna()
    errors.loc[call_rows, "day"] = call_days(errors.loc[call_rows, "ts_ms"]).to_numpy()
    features_key = identity.features_key(calls_hash(calls))
    features = _save_features(prepared, run_dir, features_key, params)
    fine_features = None
    if fine is not None:
        # Policy runs read only the ambiguous bars' minutes of this memory-mapped file.
        if fine.n_bars:
            fine_features = _save_features(fine, run_dir, features_key, params)
        else:
            fine = None
    t3 = time.perf_counter()
    # (the fingerprint's time is in truth.features: it reads the same bars)
    return TruthLayer(
        days=days,
        calls=calls,
        paths=paths,
        errors=errors,
        excluded=excluded,
        prepared=prepared,
        truth_keys=identity.day_keys(calls, days),
        features=features,
        features_path=run_dir / features.path,
        fine=fine,
        fine_path=run_dir / fine_features.path if fine_features else None,
        fine_features=fine_features,
        bars_loaded=bars_loaded,
        candle_issues=len(issues),
        data=DataFingerprint.of(
            calls,
            loaded.rejects,
            [(prepared, fine, calls)],
            entry_delay_ms=params.entry_delay_ms,
            horizon_ms=params.horizon_ms,
        ),
        timing={
            "truth.load_candles": round((t1 - t0) * 1000, 3),
            "truth.compute": round((t2 - t1) * 1000, 3),
            "truth.features": round((t3 - t2) * 1000, 3),
        },
    )


def _save_features(
    prepared: PreparedCandles, run_dir: Path, key: str, params: BacktestParams
) -> FeaturesEntry:
    relative = f"{FEATURES_DIR}/candles-{prepared.interval}-{key}.arrow"
    (run_dir / FEATURES_DIR).mkdir(parents=True, exist_ok=True)
    save_prepared(prepared, run_dir / relative)
    nbytes = (run_dir / relative).stat().st_size
    return FeaturesEntry(
        path=relative,
        key=key,
        interval=prepared.interval,
        horizon_ms=params.horizon_ms,
        entry_delay_ms=params.entry_delay_ms,
        series=prepared.n_series,
        bars=prepared.n_bars,
        bytes=nbytes,
    )


def truth_day_metadata(truth: TruthLayer, run_dir: Path) -> dict[str, dict[str, Any]]:
    """What each day's `paths` materialization records, so later runs can reuse it."""
    entered = call_days(truth.paths["alert_ts_ms"]).value_counts()
    called = call_days(truth.calls["alert_ts_ms"]).value_counts()
    digest = KnownCandles(calls_hash(truth.calls), truth.data.candles).encode()
    return {
        day: {
            "truth_key": truth.truth_keys[day],
            "features_path": dg.MetadataValue.path(str(truth.features_path)),
            "fine_features_path": str(truth.fine_path or ""),
            "candles_digest": digest,
            "run_dir": dg.MetadataValue.path(str(run_dir)),
            "calls": int(called.get(day, 0)),
            "entered": int(entered.get(day, 0)),
        }
        for day in truth.days
    }


def truth_artifacts(
    truth: TruthLayer, params: BacktestParams, run_dir: Path
) -> dict[str, ArtifactFrame]:
    """The three artifacts of a truth layer, with what run.json and the UI record."""
    dataset = {
        "from": truth.days[0],
        "to": truth.days[-1],
        "interval": params.interval,
        "calls_count": len(truth.calls),
    }
    day_metadata = truth_day_metadata(truth, run_dir)
    data = truth.data.manifest_fields()
    return {
        "alerts": ArtifactFrame(
            frame=truth.calls,
            parameters=params.all_params(),
            dataset=dataset,
            params_hash=params_hash("alerts", params.all_params()),
            data=data,
        ),
        "paths": ArtifactFrame(
            frame=truth.paths,
            parameters=params.truth_params(),
            dataset=dataset,
            timing=truth.timing,
            params_hash=params_hash("paths", params.all_params()),
            partition_metadata=day_metadata,
            features=[truth.features] + ([truth.fine_features] if truth.fine_features else []),
            data=data,
        ),
        "errors": ArtifactFrame(
            frame=truth.errors, params_hash=params_hash("errors", params.all_params()), data=data
        ),
    }


@artifact_multi_asset(
    run_type="path-only",
    layer="truth",
    outs={
        "alerts": (
            "inputs",
            "Calls posted on each UTC day, validated; rejected rows go to errors.",
        ),
        "paths": (
            "truth",
            "Truth layer: peak multiple, 2x/3x/4x times and drawdowns of each entered call.",
        ),
        "errors": (
            "truth",
            "Every rejected call row, excluded call and candle problem of the day, with its reason.",
        ),
    },
    partitions_def=day_partitions_def,
    backfill_policy=day_backfill_policy,
    check_specs=[lookahead_spec("paths")],
)
def truth_layer(
    context: dg.AssetExecutionContext,
    calls_source: CallsSourceResource,
    candle_source: CandleSourceResource,
    run_dirs: RunDirectories,
    params: BacktestParams,
) -> Iterator[dg.Output[ArtifactFrame] | dg.AssetCheckResult]:
    """Calls, truth layer and errors of every day of the run, from one scan of the candles."""
    run_dir = run_dirs.open(context).path
    days = list(context.partition_keys)
    window = context.partition_time_window
    started = time.perf_counter()
    loaded = calls_source.load(
        int(window.start.timestamp() * 1000), int(window.end.timestamp() * 1000)
    )
    load_ms = (time.perf_counter() - started) * 1000
    truth = compute_truth(
        loaded,
        days,
        identity=truth_identity(params, calls_source, candle_source),
        candle_source=candle_source,
        params=params,
        run_id=context.run.run_id,
        run_dir=run_dir,
    )
    truth.timing["alerts.load"] = round(load_ms, 3)
    context.log.info(
        f"truth {days[0]} .. {days[-1]} ({len(days)} days): {len(truth.calls)} calls, "
        f"{len(loaded.rejects)} rejected, {truth.bars_loaded} bars loaded; "
        f"{len(truth.paths)} entered, {len(truth.excluded)} excluded, "
        f"{truth.candle_issues} candle issues; timing {truth.timing}"
    )
    cells, sampled = probe_calls(
        truth.calls, truth.prepared, partitions=len(days), params=params.all_params()
    )
    check = lookahead_check_result("paths", [cells], sampled)
    yield check
    raise_if_failed(check)  # blocking: no truth layer of this run materializes
    artifacts = truth_artifacts(truth, params, run_dir)
    yield dg.Output(
        artifacts["alerts"],
        output_name="alerts",
        metadata=_alerts_metadata(truth, loaded, calls_source),
    )
    yield dg.Output(
        artifacts["paths"], output_name="paths", metadata=_paths_metadata(truth, params)
    )
    yield dg.Output(artifacts["errors"], output_name="errors", metadata=_errors_metadata(truth))


def _alerts_metadata(
    truth: TruthLayer, loaded: CallsLoad, calls_source: CallsSourceResource
) -> dict[str, Any]:
    calls = truth.calls
    per_caller = (
        calls.groupby("caller_name").size().sort_values(ascending=False).rename("calls")
    ).reset_index()
    return {
        "calls": len(calls),
        "rejected": len(loaded.rejects),
        "callers": int(calls["caller_name"].nunique()),
        "source": calls_source.path,
        "calls_per_caller": dg.MetadataValue.md(markdown_table(per_caller, max_rows=15)),
    }


def _paths_metadata(truth: TruthLayer, params: BacktestParams) -> dict[str, Any]:
    paths = truth.paths
    hit_rates = pd.DataFrame(
        {
            "metric": ["hit_2x", "hit_3x", "hit_4x"],
            "rate": [
                float(paths[c].mean()) if len(paths) else None
                for c in ("hit_2x", "hit_3x", "hit_4x")
            ],
        }
    )
    return {
        "calls": len(truth.calls),
        "entered": len(paths),
        "excluded": len(truth.excluded),
        "candle_issues": truth.candle_issues,
        "bars_loaded": truth.bars_loaded,
        "interval": params.interval,
        "params_hash": params_hash("paths", params.all_params()),
        "hit_rates": dg.MetadataValue.md(markdown_table(hit_rates)),
        "peak_multiple_distribution": dg.MetadataValue.md(
            histogram_markdown(paths["peak_multiple"], unit="x")
        ),
        "exclusions": dg.MetadataValue.md(counts_table(truth.excluded["reason"], "reason")),
    }


def _errors_metadata(truth: TruthLayer) -> dict[str, Any]:
    rows = truth.errors
    by_reason = (
        rows.groupby(["stage", "reason"]).size().rename("rows").reset_index()
        if len(rows)
        else pd.DataFrame({"stage": [], "reason": [], "rows": []})
    )
    return {"rows": len(rows), "by_reason": dg.MetadataValue.md(markdown_table(by_reason))}


# A run that writes a truth layer for days it did not plan (a policy or frontier
# run whose days had none) records their materializations too.
def log_truth_materializations(
    context: dg.AssetExecutionContext, truth: TruthLayer, run_dir: Path, paths: dict[str, Path]
) -> None:
    day_metadata = truth_day_metadata(truth, run_dir)
    for day in truth.days:
        for name in ("alerts", "paths", "errors"):
            metadata: dict[str, Any] = {
                "path": dg.MetadataValue.path(str(paths[name])),
                "run_dir": dg.MetadataValue.path(str(run_dir)),
                "computed_by": "the policy run that needed it",
            }
            if name == "paths":
                metadata.update(day_metadata[day])
            context.log_event(
                dg.AssetMaterialization(asset_key=name, partition=day, metadata=metadata)
            )


@dataclass
class TruthGroup:
    """Days whose calls share one prepared-candles source, and where the truth came from."""

    days: list[str]
    calls: pd.DataFrame
    features_path: Path
    truth_run_id: str
    fine_path: Path | None = None  # 1m bars for drill-down (runs coarser than 1m)
    prepared: PreparedCandles | None = None  # in memory when computed by this run
    fine: PreparedCandles | None = None
    rejects: pd.DataFrame | None = None  # the calls source's rejected rows of these days
    known_candles: KnownCandles | None = None  # the fingerprint's candles part, if known

    def candles(self) -> PreparedCandles:
        return self.prepared if self.prepared is not None else load_prepared(self.features_path)

    def fine_candles(self) -> PreparedCandles | None:
        if self.fine is not None:
            return self.fine
        return load_prepared(self.fine_path) if self.fine_path is not None else None


def groups_fingerprint(groups: list[TruthGroup], params: BacktestParams) -> DataFingerprint:
    """The data fingerprint of a run that read these truth groups' calls and candles."""
    calls = [g.calls for g in groups]
    rejects = [g.rejects for g in groups if g.rejects is not None]
    calls_part = DataFingerprint.calls_part(
        pd.concat(calls, ignore_index=True),
        pd.concat(rejects, ignore_index=True) if rejects else None,
    )
    read = [g for g in groups if not g.calls.empty]
    known = read[0].known_candles if len(read) == 1 else None
    if known is not None and known.calls == calls_hash(read[0].calls):
        # The same calls from the same windows as the truth layer's own fingerprint.
        return DataFingerprint(calls=calls_part, candles=known.candles)
    candles_part = DataFingerprint.candles_part(
        [(g.candles(), g.fine_candles(), g.calls) for g in read],
        entry_delay_ms=params.entry_delay_ms,
        horizon_ms=params.horizon_ms,
    )
    return DataFingerprint(calls=calls_part, candles=candles_part)


def ensure_truth(
    context: dg.AssetExecutionContext,
    days: list[str],
    *,
    calls_source: CallsSourceResource,
    candle_source: CandleSourceResource,
    params: BacktestParams,
    run_dir: RunDirectory,
) -> list[TruthGroup]:
    """The truth layer of `days`: reused where an identical one completed, else computed now.

    Reads the days' calls from the source, so a different calls file (or changed
    calls) never reuses a truth layer computed from others. Days computed here
    get their `alerts`, `paths` and `errors` written into this run directory
    and materialized, as a path-only run would have.
    """
    start = datetime.fromisoformat(days[0]).replace(tzinfo=UTC)
    end = datetime.fromisoformat(days[-1]).replace(tzinfo=UTC) + timedelta(days=1)
    loaded = calls_source.load(int(start.timestamp() * 1000), int(end.timestamp() * 1000))
    identity = truth_identity(params, calls_source, candle_source)
    keys = identity.day_keys(loaded.calls, days)
    found = {day: find_reusable_truth(context.instance, day, keys[day]) for day in days}
    day_of_call = call_days(loaded.calls["alert_ts_ms"])
    groups: dict[Path, TruthGroup] = {}
    for day, reuse in found.items():
        if reuse is None:
            continue
        group = groups.setdefault(
            reuse.features_path,
            TruthGroup(
                [],
                loaded.calls.iloc[0:0],
                reuse.features_path,
                reuse.run_id,
                reuse.fine_path,
                known_candles=reuse.known_candles,
            ),
        )
        group.days.append(day)
    reject_days = call_days(loaded.rejects["ts_ms"].fillna(0))
    for group in groups.values():
        group.calls = loaded.calls[day_of_call.isin(group.days).to_numpy()]
        group.rejects = loaded.rejects[reject_days.isin(group.days).to_numpy()]
    missing = [day for day in days if found[day] is None]
    for group in groups.values():
        context.log.info(
            f"truth of {len(group.days)} days ({group.days[0]} .. {group.days[-1]}) "
            f"reused from run {group.truth_run_id}"
        )
    if missing:
        context.log.info(
            f"no truth layer with the same inputs and parameters for {len(missing)} days "
            f"({missing[0]} .. {missing[-1]}): computing it in this run"
        )
    sources = {day: str(reuse.paths_path) for day, reuse in found.items() if reuse is not None}
    result = list(groups.values())
    if missing:
        in_missing = day_of_call.isin(missing).to_numpy()
        subset_load = CallsLoad(
            calls=loaded.calls[in_missing].reset_index(drop=True),
            rejects=loaded.rejects[reject_days.isin(missing).to_numpy()].reset_index(drop=True),
        )
        truth = compute_truth(
            subset_load,
            missing,
            identity=identity,
            candle_source=candle_source,
            params=params,
            run_id=context.run.run_id,
            run_dir=run_dir.path,
        )
        written: dict[str, Path] = {}
        for name, artifact in truth_artifacts(truth, params, run_dir.path).items():
            table = to_arrow(artifact.frame, ARTIFACT_SCHEMAS[name], name)
            written[name], _ = run_dir.record_artifact(name, table, missing, artifact)
        log_truth_materializations(context, truth, run_dir.path, written)
        sources.update({day: str(written["paths"]) for day in missing})
        result.append(
            TruthGroup(
                missing,
                truth.calls,
                truth.features_path,
                context.run.run_id,
                truth.fine_path,
                truth.prepared,
                truth.fine,
                subset_load.rejects,
                KnownCandles(calls_hash(truth.calls), truth.data.candles),
            )
        )
    run_dir.record_truth_sources(sources)
    return result
