"""`quantbot backtest catalog-sync | catalog-query | list`.

Each handler returns an exit code: 0 on success, 1 when a lookup finds
nothing, 2 on bad input or an unusable catalog (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from quantbot_assets.catalog.exports import refresh_exports
from quantbot_assets.catalog.queries import (
    RUN_STATUSES,
    RUN_TYPES,
    CatalogNotFoundError,
    artifact_path,
    query_runs,
    rejected_runs,
)
from quantbot_assets.catalog.register import SyncReport, catalog_stats, format_stats, sync_catalog
from quantbot_assets.catalog.scan import iter_run_dir_candidates, markers_present
from quantbot_assets.catalog.writer import CatalogLockTimeout, catalog_writer
from quantbot_assets.rundir import read_manifest
from quantbot_assets.schemas import ARTIFACT_SCHEMAS


@dataclass(frozen=True)
class _Defaults:
    runs_dir: Path
    catalog_path: Path
    exports_dir: Path


def _defaults() -> _Defaults:
    # The one place the commands learn where things live (imported here, not at
    # module import, so the environment is read when a command runs).
    from quantbot_assets.settings import Settings

    settings = Settings.from_env()
    return _Defaults(settings.runs_dir, settings.catalog_path, settings.exports_dir)


def _or_default(value: str | None, pick: Callable[[_Defaults], Path]) -> Path:
    return Path(value) if value else pick(_defaults())


def _error(message: str) -> int:
    print(f"error: {(message.strip().splitlines() or [''])[0]}", file=sys.stderr)
    return 2


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _print_report(report: SyncReport) -> None:
    print(
        f"✓ Registered {_plural(len(report.registered), 'run')}"
        + (f" ({len(report.failed)} failed)" if report.failed else "")
    )
    print(f"✓ Skipped {_plural(report.skipped, 'run')}")
    if report.incomplete:
        print(
            f"… {_plural(report.incomplete, 'run')} without a marker or check outcomes yet"
            " (not catalogued)"
        )
    if report.rejected:
        print(f"✗ Rejected {_plural(len(report.rejected), 'run')}")
        for run_dir, reason in report.rejected:
            print(f"    {run_dir}: {reason}")


def _cmd_sync(args: argparse.Namespace) -> int:
    runs_dir = _or_default(args.base_dir, lambda d: d.runs_dir)
    db_path = _or_default(args.duckdb, lambda d: d.catalog_path)
    exports_dir = _or_default(args.exports_dir, lambda d: d.exports_dir)
    if not runs_dir.is_dir():
        return _error(f"runs directory {runs_dir} does not exist")
    try:
        with catalog_writer(db_path) as conn:
            report = sync_catalog(conn, runs_dir)
            status = refresh_exports(conn, exports_dir)
            stats = catalog_stats(conn) if args.stats or args.json else None
    except CatalogLockTimeout as exc:
        return _error(str(exc))
    except (duckdb.Error, OSError) as exc:
        return _error(f"catalog {db_path}: {exc}")
    except Exception as exc:  # the CLI's contract: one line, exit code 2
        return _error(f"catalog sync failed: {type(exc).__name__}: {exc}".splitlines()[0])
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


def _json_value(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat() + "Z"  # catalog timestamps are naive UTC
    return str(value)


def _print_frame(frame: pd.DataFrame, as_json: bool) -> None:
    cleaned = frame.astype(object).where(frame.notna(), None)
    if as_json:
        print(json.dumps(cleaned.to_dict(orient="records"), indent=2, default=_json_value))
    elif frame.empty:
        print("(none)")
    else:
        print(cleaned.fillna("").to_string(index=False))


def _cmd_query(args: argparse.Namespace) -> int:
    db_path = _or_default(args.duckdb, lambda d: d.catalog_path)
    if (args.run_id is None) != (args.artifact_type is None):
        return _error("--run-id and --artifact-type go together")
    try:
        if args.rejected:
            _print_frame(rejected_runs(db_path), args.json)
            return 0
        if args.run_id is not None:
            found = artifact_path(db_path, args.run_id, args.artifact_type)
            if found is None:
                print(
                    f"error: run {args.run_id!r} has no {args.artifact_type!r} artifact in the catalog",
                    file=sys.stderr,
                )
                return 1
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
    except (CatalogNotFoundError, ValueError) as exc:
        return _error(str(exc))
    except duckdb.Error as exc:
        return _error(f"catalog {db_path}: {exc}")
    _print_frame(frame, args.json)
    return 0


def _manifest_rows(runs_dir: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for run_dir in iter_run_dir_candidates(runs_dir):
        rel = str(run_dir.relative_to(runs_dir))
        markers = ",".join(markers_present(run_dir)) or "-"
        try:
            m = read_manifest(run_dir)
        except Exception as exc:  # OSError, ValidationError: shown, not hidden
            first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            rows.append(
                {
                    "run_id": None,
                    "run_type": None,
                    "status": "unreadable",
                    "created_at": None,
                    "marker": markers,
                    "artifacts": "",
                    "run_dir": rel,
                    "error": first_line,
                    "config_hash": None,
                    "data_fingerprint": None,
                }
            )
            continue
        rows.append(
            {
                "run_id": m.run_id,
                "run_type": m.run_type,
                "status": m.status,
                "created_at": m.created_at,
                "marker": markers,
                "artifacts": ",".join(sorted(m.artifacts)),
                "run_dir": rel,
                "error": m.error,
                "config_hash": m.config_hash,
                "data_fingerprint": m.data_fingerprint,
            }
        )
    rows.sort(key=lambda r: (r["created_at"] or "", r["run_dir"]), reverse=True)
    return rows


def _cmd_list(args: argparse.Namespace) -> int:
    runs_dir = _or_default(args.base_dir, lambda d: d.runs_dir)
    if not runs_dir.is_dir():
        return _error(f"runs directory {runs_dir} does not exist")
    if args.limit < 1:
        return _error(f"--limit must be at least 1, got {args.limit}")
    rows = _manifest_rows(runs_dir)
    if args.same_as is not None:
        mine = [r for r in rows if r["run_id"] == args.same_as]
        if not mine:
            return _error(f"no run {args.same_as!r} under {runs_dir}")
        key = (mine[0]["config_hash"], mine[0]["data_fingerprint"])
        if None in key:
            return _error(
                f"run {args.same_as!r} has no config_hash or data_fingerprint in its run.json "
                "(written before run.json 1.2.0, or a run that read no data)"
            )
        rows = [r for r in rows if (r["config_hash"], r["data_fingerprint"]) == key]
    rows = rows[: args.limit]
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print("(no runs)")
    else:
        print(pd.DataFrame(rows).fillna("").to_string(index=False))
    return 0


def _cmd_diff(args: argparse.Namespace) -> int:
    from quantbot_assets.run_diff import RunDiffError, diff_runs, format_diff

    runs_dir = _or_default(args.base_dir, lambda d: d.runs_dir)
    try:
        diff = diff_runs(args.run_a, args.run_b, runs_dir)
    except RunDiffError as exc:
        return _error(str(exc))
    print(json.dumps(diff, indent=2, default=str) if args.json else format_diff(diff))
    return 0


def add_backtest_commands(backtest_subparsers: argparse._SubParsersAction) -> None:
    """Add `catalog-sync`, `catalog-query`, `list` and `diff` under `quantbot backtest`."""
    sync = backtest_subparsers.add_parser(
        "catalog-sync", help="register finished run directories in the DuckDB catalog"
    )
    sync.add_argument("--base-dir", help="runs root (default: settings runs dir)")
    sync.add_argument("--duckdb", help="catalog database (default: data/backtest_catalog.duckdb)")
    sync.add_argument("--exports-dir", help="golden exports directory (default: data/exports)")
    sync.add_argument("--stats", action="store_true", help="print catalog statistics")
    sync.add_argument("--json", action="store_true", help="machine-readable output")
    sync.set_defaults(func=_cmd_sync)

    query = backtest_subparsers.add_parser("catalog-query", help="query catalogued runs")
    query.add_argument("--duckdb", help="catalog database (default: data/backtest_catalog.duckdb)")
    query.add_argument("--limit", type=int, default=20)
    query.add_argument("--run-type", help=f"one of: {', '.join(RUN_TYPES)}")
    query.add_argument("--status", help=f"one of: {', '.join(RUN_STATUSES)}")
    query.add_argument("--from-date", help="created on or after this UTC day (YYYY-MM-DD)")
    query.add_argument("--to-date", help="created on or before this UTC day (YYYY-MM-DD)")
    query.add_argument("--run-id", help="with --artifact-type: print that artifact's path")
    query.add_argument("--artifact-type", help=f"one of: {', '.join(ARTIFACT_SCHEMAS)}")
    query.add_argument(
        "--rejected", action="store_true", help="list rejected run directories and reasons"
    )
    query.add_argument(
        "--same-as",
        metavar="RUN_ID",
        help="runs with the config_hash and data_fingerprint of RUN_ID (same config and data)",
    )
    query.add_argument("--json", action="store_true", help="machine-readable output")
    query.set_defaults(func=_cmd_query)

    listing = backtest_subparsers.add_parser(
        "list", help="list run directories from their run.json"
    )
    listing.add_argument("--base-dir", help="runs root (default: settings runs dir)")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument(
        "--same-as",
        metavar="RUN_ID",
        help="only runs with the config_hash and data_fingerprint of RUN_ID (same config, data)",
    )
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(func=_cmd_list)

    diff = backtest_subparsers.add_parser(
        "diff", help="what differs between two runs (parameters, data, code, trades, summary)"
    )
    diff.add_argument("run_a", metavar="RUN_A", help="run id (under --base-dir) or run directory")
    diff.add_argument("run_b", metavar="RUN_B", help="run id (under --base-dir) or run directory")
    diff.add_argument("--base-dir", help="runs root for run ids (default: settings runs dir)")
    diff.add_argument("--json", action="store_true", help="machine-readable output")
    diff.set_defaults(func=_cmd_diff)
