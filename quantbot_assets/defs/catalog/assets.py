"""The `catalog` group: the single writer of the run catalog, golden exports and leaderboards."""

from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field

from quantbot_assets.catalog import leaderboards
from quantbot_assets.catalog.exports import refresh_exports
from quantbot_assets.catalog.register import (
    catalog_stats,
    format_stats,
    register_runs,
    sync_catalog,
)
from quantbot_assets.catalog.writer import catalog_write_lock
from quantbot_assets.remote_runs import (
    localize_run_dirs,
    mirror_marked_runs,
    publish_exports,
    pull_catalog,
    runs_url,
)
from quantbot_assets.reports import markdown_table
from quantbot_assets.run_directories import RunDirectories

# Catalog writers run one at a time: one step in this pool (dagster.yaml sets
# every pool's limit to 1) and one run with this tag (run queue limit 1).
CATALOG_POOL = "catalog"
CATALOG_RUN_TAG = "quantbot/catalog"
CATALOG_GROUP = "catalog"
# Every asset of the group, in the order a catalog run materializes them.
CATALOG_ASSETS = ["backtest_catalog", "golden_exports", "caller_leaderboard", "policy_leaderboard"]


class CatalogLocations(dg.ConfigurableResource):
    """Where the golden exports are written (data/exports by default)."""

    exports_dir: str


class CatalogSyncConfig(dg.Config):
    run_dirs: list[str] = Field(
        default_factory=list,
        description="Run directories to register (the sensor fills this); empty: scan every run",
    )


@dg.asset(group_name=CATALOG_GROUP, pool=CATALOG_POOL, kinds={"duckdb"})
def backtest_catalog(
    context: dg.AssetExecutionContext,
    config: CatalogSyncConfig,
    catalog_db: DuckDBResource,
    run_dirs: RunDirectories,
) -> dg.MaterializeResult:
    """Runs and artifacts catalogued in DuckDB from finished run directories; rejected ones with reasons."""
    runs_root = Path(run_dirs.runs_dir)
    url = runs_url()
    todo = [Path(p) for p in config.run_dirs]
    if url is not None:  # another machine named them: mirror them from the bucket first
        todo = localize_run_dirs(config.run_dirs, runs_root, url)
        if not config.run_dirs:
            mirror_marked_runs(url, runs_root)
    with catalog_write_lock(Path(catalog_db.database)):
        pull_catalog(Path(catalog_db.database))  # the last writer's state, when shared
        with catalog_db.get_connection() as conn:
            report = register_runs(conn, runs_root, todo) if todo else sync_catalog(conn, runs_root)
            stats = catalog_stats(conn)
    for rel, reason in report.rejected:
        context.log.warning(f"rejected run directory {rel}: {reason}")
    context.log.info(
        f"catalog: {len(report.registered)} registered, {report.skipped} already catalogued, "
        f"{len(report.rejected)} rejected"
    )
    rejected_md = "\n".join(f"- `{rel}`: {reason}" for rel, reason in report.rejected) or "none"
    return dg.MaterializeResult(
        metadata={
            "registered": len(report.registered),
            "skipped": report.skipped,
            "rejected": len(report.rejected),
            "failed_runs": len(report.failed),
            "total_runs": int(stats.get("total_runs", 0)),
            "catalog": dg.MetadataValue.path(str(catalog_db.database)),
            "stats": dg.MetadataValue.md(f"```\n{format_stats(stats)}\n```"),
            "rejected_runs": dg.MetadataValue.md(rejected_md),
        }
    )


@dg.asset(group_name=CATALOG_GROUP, pool=CATALOG_POOL, deps=[backtest_catalog], kinds={"parquet"})
def golden_exports(
    context: dg.AssetExecutionContext, catalog_db: DuckDBResource, locations: CatalogLocations
) -> dg.MaterializeResult:
    """One Parquet file per artifact type with the latest catalogued version of each partition."""
    with catalog_write_lock(Path(catalog_db.database)), catalog_db.get_connection() as conn:
        status = refresh_exports(conn, Path(locations.exports_dir))
    publish_exports(Path(locations.exports_dir))  # QUANTBOT_EXPORTS_URL, when set
    rows = {name: f.rows for name, f in status.files.items()}
    context.log.info(f"exports refreshed in {locations.exports_dir}: {rows}")
    table = "\n".join(
        ["| artifact | rows | runs |", "| --- | --- | --- |"]
        + [f"| {name} | {f.rows} | {len(f.runs)} |" for name, f in status.files.items()]
    )
    return dg.MaterializeResult(
        metadata={
            "exports_dir": dg.MetadataValue.path(locations.exports_dir),
            "files": dg.MetadataValue.md(table),
            **{f"rows/{name}": n for name, n in rows.items()},
        }
    )


@dg.asset(group_name=CATALOG_GROUP, deps=[golden_exports], kinds={"pandas"})
def caller_leaderboard(locations: CatalogLocations) -> dg.MaterializeResult:
    """Callers ranked by the lower bound of their 2x hit rate's 90 % interval (at least 20 calls)."""
    board = leaderboards.caller_leaderboard(Path(locations.exports_dir))
    return dg.MaterializeResult(
        metadata={
            "callers": len(board),
            "leaderboard": dg.MetadataValue.md(markdown_table(board)),
        }
    )


@dg.asset(group_name=CATALOG_GROUP, deps=[golden_exports], kinds={"pandas"})
def policy_leaderboard(locations: CatalogLocations) -> dg.MaterializeResult:
    """Policies ranked by the lower bound of their median return's 90 % interval (>= 20 trades)."""
    board = leaderboards.policy_leaderboard(Path(locations.exports_dir))
    return dg.MaterializeResult(
        metadata={
            "policies": len(board),
            "leaderboard": dg.MetadataValue.md(markdown_table(board)),
        }
    )
