"""`run_catalog_sensor`: catalogs run directories when their `_SUCCESS` or `_FAILED` appears."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import dagster as dg

from quantbot_assets.catalog.scan import open_run_dirs, scan_markers
from quantbot_assets.catalog.validate import Rejection, validate_run_dir
from quantbot_assets.defs.catalog.assets import CATALOG_ASSETS, CATALOG_RUN_TAG
from quantbot_assets.remote_runs import mirror_marked_runs, runs_url
from quantbot_assets.rundir import RUN_DIR_PREFIX, SUCCESS_MARKER, record_checks_not_run


def settle_ended_runs(
    instance: dg.DagsterInstance, run_dirs: list[Path], log: Callable[[str], None]
) -> None:
    """Checks of `_SUCCESS` runs whose Dagster run ended without them are recorded `not_run`.

    A run canceled, killed or failed after its last artifact never runs its
    checks: their outcome becomes "not run" so the next tick catalogs the run
    instead of waiting for it forever.
    """
    for run_dir in run_dirs:
        if not run_dir.name.startswith(RUN_DIR_PREFIX) or not (run_dir / SUCCESS_MARKER).exists():
            continue
        run = instance.get_run_by_id(run_dir.name[len(RUN_DIR_PREFIX) :])
        if run is not None and not run.is_finished:
            continue  # still running its checks
        status = run.status.value if run is not None else "unknown to Dagster"
        recorded = record_checks_not_run(
            run_dir, f"the Dagster run ended ({status}) before this check ran"
        )
        if recorded:
            log(f"{run_dir.name}: checks {', '.join(recorded)} recorded as not run ({status})")


def catalog_tick(context: dg.SensorEvaluationContext, runs_root: Path) -> dg.SensorResult:
    """One tick: new markers under `runs_root` become one catalog run request."""
    url = runs_url()
    if url is not None:  # run directories in a bucket: mirror the marked ones, then scan
        mirror_marked_runs(url, runs_root)
    events, cursor = scan_markers(runs_root, context.cursor)
    settle_ended_runs(context.instance, open_run_dirs(runs_root, cursor), context.log.warning)
    if not events:
        return dg.SensorResult(
            skip_reason=dg.SkipReason("no new completion markers"), cursor=cursor
        )
    for event in events:
        verdict = validate_run_dir(runs_root, event.run_dir)
        if isinstance(verdict, Rejection):
            # Still sent to the catalog, which records it in the rejected-runs table.
            context.log.warning(f"{event.run_key}: will be rejected: {verdict.describe()}")
    keys = sorted(e.run_key for e in events)
    context.log.info(f"{len(events)} new markers: {', '.join(keys[:20])}")
    request = dg.RunRequest(
        run_key="catalog:" + hashlib.sha256("\n".join(keys).encode()).hexdigest()[:20],
        asset_selection=[dg.AssetKey(name) for name in CATALOG_ASSETS],
        run_config={
            "ops": {
                "backtest_catalog": {
                    "config": {"run_dirs": sorted({str(e.run_dir) for e in events})}
                }
            }
        },
        tags={CATALOG_RUN_TAG: "sensor"},
    )
    return dg.SensorResult(run_requests=[request], cursor=cursor)


def build_catalog_sensor(runs_root: Path) -> dg.SensorDefinition:
    """`run_catalog_sensor` over `runs_root`.

    The code location builds it from the `run_dirs` resource's `runs_dir`
    (catalog_definitions), so the path is still configured once. It does not
    take the resource as a parameter: a tick evaluated straight from the code
    location (`defs.resolve_sensor_def(...)(context)`, as the tests and
    scripts do) is given no resources.
    """

    @dg.sensor(
        name="run_catalog_sensor",
        minimum_interval_seconds=15,
        default_status=dg.DefaultSensorStatus.RUNNING,
        asset_selection=CATALOG_ASSETS,
        description="Catalogs run directories when their _SUCCESS or _FAILED marker appears.",
    )
    def run_catalog_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        return catalog_tick(context, runs_root)

    return run_catalog_sensor
