"""`quantbot backtest catalog-sync` and `catalog-query`: the DuckDB catalog of run directories.

The catalog itself (registration, exports, queries) is quantbot_assets.catalog;
this module reads the options, calls it and prints. A lookup that finds
nothing is a NotFoundError (exit code 1); bad input or an unusable catalog is a
UsageError or DataError (exit code 2).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from quantbot_assets.cli.render import plural, print_frame
from quantbot_assets.errors import DataError, NotFoundError, QuantbotError, UsageError


def _settings() -> Any:
    # Read when a command runs (not at import), so the environment of the call counts.
    from quantbot_assets.settings import Settings

    return Settings.from_env()


def _print_report(report: Any) -> None:
    print(
        f"✓ Registered {plural(len(report.registered), 'run')}"
        + (f" ({len(report.failed)} failed)" if report.failed else "")
    )
    print(f"✓ Skipped {plural(report.skipped, 'run')}")
    if report.incomplete:
        print(
            f"… {plural(report.incomplete, 'run')} without a marker or check outcomes yet"
            " (not catalogued)"
        )
    if report.rejected:
        print(f"✗ Rejected {plural(len(report.rejected), 'run')}")
        for run_dir, reason in report.rejected:
            print(f"    {run_dir}: {reason}")


def cmd_catalog_sync(args: argparse.Namespace) -> int:
    import duckdb

    from quantbot_assets.catalog.exports import refresh_exports
    from quantbot_assets.catalog.register import catalog_stats, format_stats, sync_catalog
    from quantbot_assets.catalog.writer import catalog_writer

    settings = _settings()
    runs_dir = Path(args.runs_dir) if args.runs_dir else settings.runs_dir
    db_path = Path(args.duckdb) if args.duckdb else settings.catalog_path
    exports_dir = Path(args.exports_dir) if args.exports_dir else settings.exports_dir
    if not runs_dir.is_dir():
        raise UsageError(f"runs directory {runs_dir} does not exist")
    try:
        with catalog_writer(db_path) as conn:
            report = sync_catalog(conn, runs_dir)
            status = refresh_exports(conn, exports_dir)
            stats = catalog_stats(conn) if args.stats or args.json else None
    except QuantbotError:
        raise  # the writer's lock timeout says what to do
    except (duckdb.Error, OSError) as exc:
        raise DataError(f"catalog {db_path}: {exc}") from None
    except Exception as exc:  # the CLI's contract: one line, exit code 2
        raise DataError(f"catalog sync failed: {type(exc).__name__}: {exc}") from None
    if args.json:
        payload = {
            "registered": report.registered,
            "failed": report.failed,
            "skipped": report.skipped,
            "incomplete": report.incomplete,
            "rejected": [{"run_dir": d, "reason": r} for d, r in report.rejected],
            "exports": status.model_dump(),
            "stats": stats,
        }
        print(json.dumps(payload, indent=2))
        return 0
    print("✓ Initialized catalog tables")
    _print_report(report)
    rows = ", ".join(f"{name} {entry.rows}" for name, entry in status.files.items())
    print(f"✓ Refreshed exports in {exports_dir} (rows: {rows})")
    for problem in status.problems:
        print(f"✗ Export skipped {problem.path}: {problem.error}")
    if stats is not None:
        print()
        print(format_stats(stats))
    return 0


def cmd_catalog_query(args: argparse.Namespace) -> int:
    from quantbot_assets.catalog.remote import catalog_url, fetched_snapshot
    from quantbot_assets.storage import is_url

    if (args.run_id is None) != (args.artifact_type is None):
        raise UsageError("--run-id and --artifact-type go together")
    url = args.duckdb if is_url(args.duckdb) else None if args.duckdb else catalog_url()
    if url is not None:  # the snapshot the writer published to object storage
        with fetched_snapshot(url) as local:
            return _catalog_query(args, local, url)
    db_path = Path(args.duckdb) if args.duckdb else _settings().catalog_path
    return _catalog_query(args, db_path, str(db_path))


def _catalog_query(args: argparse.Namespace, db_path: Path, where: str) -> int:
    import duckdb

    from quantbot_assets.catalog.queries import artifact_path, query_runs, rejected_runs

    try:
        if args.rejected:
            print_frame(rejected_runs(db_path), args.json)
            return 0
        if args.run_id is not None:
            found = artifact_path(db_path, args.run_id, args.artifact_type)
            if found is None:
                raise NotFoundError(
                    f"run {args.run_id!r} has no {args.artifact_type!r} artifact in the catalog"
                )
            print(json.dumps({"path": str(found)}) if args.json else found)
            return 0
        frame = query_runs(
            db_path,
            limit=args.limit,
            run_type=args.run_type,
            status=args.status,
            from_date=args.from_date,
            to_date=args.to_date,
            same_as=args.same_as,
        )
    except QuantbotError:
        raise
    except ValueError as exc:  # a filter the catalog refuses, named in one line
        raise UsageError(str(exc)) from None
    except duckdb.Error as exc:
        raise DataError(f"catalog {where}: {exc}") from None
    print_frame(frame, args.json)
    return 0
