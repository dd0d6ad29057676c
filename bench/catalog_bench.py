"""Catalog at scale: full sync, incremental sync, one sensor tick, query latency.

    python bench/catalog_bench.py                  # 10,000 and 100,000 runs
    python bench/catalog_bench.py --sizes 2000     # a quick look
    python bench/catalog_bench.py --smoke          # 200 runs in a temp dir (CI)
    python bench/catalog_bench.py --sizes 100000 --months 1 --tick-only   # worst-case tick

Builds synthetic run directories (valid manifests, real Parquet files shared
through hard links so 100,000 runs fit in little space) under --work-dir,
spread over --months month folders, with the new runs in the newest month.
Targets (issue): full sync of 10,000 runs <= 10 s; a sensor tick with
100,000 existing and 10 new <= 2 s; catalog-query <= 100 ms at 100,000 runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pyarrow as pa

from quantbot_assets.catalog.exports import refresh_exports
from quantbot_assets.catalog.queries import artifact_path, query_runs
from quantbot_assets.catalog.register import register_runs, sync_catalog
from quantbot_assets.catalog.scan import MarkerEvent, scan_markers
from quantbot_assets.catalog.validate import validate_run_dir
from quantbot_assets.catalog.writer import catalog_writer
from quantbot_assets.rundir import (
    SUCCESS_MARKER,
    ArtifactEntry,
    DatasetWindow,
    RunManifest,
    atomic_write_parquet,
    run_dir_path,
)
from quantbot_assets.schemas import ARTIFACT_FILES, ARTIFACT_SCHEMAS, SCHEMA_VERSIONS

_T = TypeVar("_T")


def _template_tables() -> dict[str, pa.Table]:
    """Small but real tables of every type a run writes (3 rows each)."""
    tables = {}
    for name, schema in ARTIFACT_SCHEMAS.items():
        columns = {}
        for field in schema:
            if pa.types.is_string(field.type):
                columns[field.name] = pa.array([f"{field.name}-{i}" for i in range(3)])
            elif pa.types.is_boolean(field.type):
                columns[field.name] = pa.array([True, False, True])
            elif pa.types.is_integer(field.type):
                columns[field.name] = pa.array([1, 2, 3], pa.int64())
            else:
                columns[field.name] = pa.array([1.5, 2.5, 3.5])
        tables[name] = pa.table(columns, schema=schema)
    return tables


def write_templates(template_dir: Path) -> dict[str, tuple[Path, int]]:
    """One Parquet file per artifact type: {type: (path, rows)}."""
    out = {}
    for name, table in _template_tables().items():
        path = template_dir / f"{name}.parquet"
        atomic_write_parquet(table, path)
        out[name] = (path, table.num_rows)
    return out


class Templates:
    """Template files, a fresh copy every LINKS_PER_COPY runs (ext4 allows 65,000 links a file)."""

    LINKS_PER_COPY = 20_000

    def __init__(self, template_dir: Path) -> None:
        self.template_dir = template_dir
        self.copies: dict[int, dict[str, tuple[Path, int]]] = {}

    def for_run(self, index: int) -> dict[str, tuple[Path, int]]:
        block = index // self.LINKS_PER_COPY
        if block not in self.copies:
            self.copies[block] = write_templates(self.template_dir / str(block))
        return self.copies[block]


def make_synthetic_run(
    runs_root: Path,
    run_id: str,
    created: datetime,
    templates: dict[str, tuple[Path, int]],
    *,
    policy: bool = False,
) -> Path:
    """A completed run directory: hard-linked Parquet files, run.json, _SUCCESS.

    Written without fsync (a benchmark fixture, not a producer).
    """
    run_dir = run_dir_path(runs_root, run_id, created)
    day = created.strftime("%Y-%m-%d")
    types = ("alerts", "trades", "summary") if policy else ("alerts", "paths")
    partition = f"{day}|fixed-stop-5pct" if policy else day
    artifacts = {}
    for name in types:
        src, rows = templates[name]
        rel = ARTIFACT_FILES[name]
        dest = run_dir / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.link(src, dest)
        artifacts[name] = ArtifactEntry(
            path=rel,
            rows=rows,
            bytes=src.stat().st_size,
            schema_version=SCHEMA_VERSIONS[name],
            asset_key=name,
            partition_key=day if name == "alerts" else partition,
        )
    iso = created.isoformat().replace("+00:00", "Z")
    manifest = RunManifest(
        run_id=run_id,
        run_type="policy" if policy else "path-only",
        status="completed",
        created_at=iso,
        started_at=iso,
        completed_at=(created + timedelta(seconds=30)).isoformat().replace("+00:00", "Z"),
        git_commit="0" * 40,
        git_branch="main",
        git_dirty=False,
        dataset=DatasetWindow.model_validate(
            {"from": day, "to": day, "interval": "1m", "calls_count": 3}
        ),
        parameters={
            "policy_id": "fixed-stop-5pct",
            "policy": {"kind": "fixed_stop", "stop_loss_bps": 500},
        }
        if policy
        else {"interval": "1m"},
        config_hash="bench",
        job_name="policy_job" if policy else "truth_job",
        partition_keys={name: artifacts[name].partition_key or "" for name in types},
        planned_artifacts=list(types),
        schema_versions={name: SCHEMA_VERSIONS[name] for name in types},
        artifacts=artifacts,
        timing={"total_ms": 30_000.0},
    )
    (run_dir / "run.json").write_text(manifest.to_json())
    (run_dir / SUCCESS_MARKER).write_text("")
    return run_dir


def _created(i: int, n: int, months: int) -> datetime:
    """Spread run i of n evenly over `months` months starting January 2024."""
    month = min(months - 1, i * months // n)
    year, mon = divmod(month, 12)
    return datetime(2024 + year, mon + 1, 1 + i % 28, 12, tzinfo=UTC) + timedelta(seconds=i % 3600)


def _timed(action: Callable[[], _T]) -> tuple[float, _T]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def _bench_full_sync(root: Path, db: Path, exports: Path, n: int, figures: dict) -> None:
    with catalog_writer(db) as conn:
        cpu0 = time.process_time()
        full_s, report = _timed(lambda: sync_catalog(conn, root))
        figures["full_sync_cpu_s"] = round(time.process_time() - cpu0, 2)
        assert len(report.registered) == n and not report.rejected, report.rejected[:3]
        figures["full_sync_s"] = round(full_s, 2)
        export_s, _ = _timed(lambda: refresh_exports(conn, exports))
        figures["exports_refresh_s"] = round(export_s, 2)
        resync_s, _ = _timed(lambda: sync_catalog(conn, root))
        figures["resync_nothing_new_s"] = round(resync_s, 2)


def bench_size(
    n: int, work: Path, months: int, templates: Templates, tick_only: bool = False
) -> dict:
    root, db, exports = work / f"runs_{n}", work / f"catalog_{n}.duckdb", work / f"exports_{n}"
    for path in (root, exports):
        shutil.rmtree(path, ignore_errors=True)
    for suffix in ("", ".wal", ".snapshot", ".lock"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    figures: dict[str, float | int] = {"runs": n, "months": months}
    cpu_start = time.process_time()

    build_s, _ = _timed(
        lambda: [
            make_synthetic_run(
                root,
                f"run-{i:07d}",
                _created(i, n, months),
                templates.for_run(i),
                policy=i % 3 == 0,
            )
            for i in range(n)
        ]
    )
    figures["build_s"] = round(build_s, 1)

    if not tick_only:
        _bench_full_sync(root, db, exports, n, figures)

    time.sleep(2.1)  # let the build fall behind the scan's watermark margin
    first_tick_s, (events, cursor) = _timed(lambda: scan_markers(root, None))
    figures["first_tick_all_markers_s"] = round(first_tick_s, 2)
    figures["cursor_bytes"] = len(cursor)
    last = _created(n - 1, n, months)

    def new_runs(tag: str) -> list[Path]:
        return [
            make_synthetic_run(
                root, f"new-{tag}-{i}", last + timedelta(minutes=i), templates.for_run(0)
            )
            for i in range(10)
        ]

    fresh = new_runs("tick")

    def tick() -> tuple[list[MarkerEvent], str]:
        found, next_cursor = scan_markers(root, cursor)
        for event in found:  # what the sensor reports: rejected runs named in the tick
            validate_run_dir(root, event.run_dir)
        return found, next_cursor

    tick_s, (events, _next) = _timed(tick)
    assert len(events) == 10, len(events)
    figures["sensor_tick_10_new_s"] = round(tick_s, 3)
    idle_s, _ = _timed(lambda: scan_markers(root, _next))
    figures["sensor_tick_nothing_new_s"] = round(idle_s, 3)
    if tick_only:
        figures["load_avg_1m"] = round(os.getloadavg()[0], 2)
        return figures

    with catalog_writer(db) as conn:
        inc_s, report = _timed(lambda: register_runs(conn, root, fresh))
        assert len(report.registered) == 10
        figures["incremental_register_10_s"] = round(inc_s, 3)
        new_runs("sync")
        inc_full_s, report = _timed(lambda: sync_catalog(conn, root))
        assert len(report.registered) == 10
        figures["incremental_catalog_sync_10_s"] = round(inc_full_s, 2)
        inc_exports_s, _ = _timed(lambda: refresh_exports(conn, exports))
        figures["exports_refresh_after_10_s"] = round(inc_exports_s, 2)

    def latency(name: str, action: Callable[[], object]) -> None:
        action()  # warm the page cache
        cpu = time.process_time()
        samples = [_timed(action)[0] for _ in range(20)]
        figures[f"{name}_ms"] = round(statistics.median(samples) * 1000, 1)
        figures[f"{name}_cpu_ms"] = round((time.process_time() - cpu) / 20 * 1000, 1)

    latency("query_latest_10", lambda: query_runs(db, limit=10))
    latency(
        "query_filtered",
        lambda: query_runs(
            db,
            limit=100,
            run_type="policy",
            status="completed",
            from_date="2024-03-01",
            to_date="2024-03-31",
        ),
    )
    latency("artifact_path", lambda: artifact_path(db, f"run-{n // 2:07d}", "alerts"))
    figures["catalog_mb"] = round(Path(db).stat().st_size / 1e6, 1)
    figures["process_cpu_s"] = round(time.process_time() - cpu_start, 1)
    # Other work on the machine inflates wall times; this says how busy it was.
    figures["load_avg_1m"] = round(os.getloadavg()[0], 2)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--work-dir", type=Path, default=Path("bench/out/catalog"))
    parser.add_argument("--keep", action="store_true", help="keep the synthetic runs afterwards")
    parser.add_argument(
        "--smoke", action="store_true", help="200 runs in a temporary directory (CI)"
    )
    parser.add_argument(
        "--tick-only", action="store_true", help="only the sensor ticks (no catalog, no queries)"
    )
    args = parser.parse_args()
    if args.smoke:
        with tempfile.TemporaryDirectory() as tmp:
            figures = bench_size(200, Path(tmp), args.months, Templates(Path(tmp) / "templates"))
            print(json.dumps(figures), flush=True)
        return
    args.work_dir.mkdir(parents=True, exist_ok=True)
    templates = Templates(args.work_dir / "templates")
    results = []
    for n in args.sizes:
        figures = bench_size(n, args.work_dir, args.months, templates, args.tick_only)
        print(json.dumps(figures), flush=True)
        results.append(figures)
        if not args.keep:
            shutil.rmtree(args.work_dir / f"runs_{n}", ignore_errors=True)
    (args.work_dir / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
