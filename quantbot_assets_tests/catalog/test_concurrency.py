"""Several writer and reader processes at once: nothing fails, nothing is lost."""

from __future__ import annotations

import multiprocessing as mp
import multiprocessing.synchronize
import time
import traceback
from pathlib import Path

import duckdb

from quantbot_assets.catalog.exports import refresh_exports
from quantbot_assets.catalog.queries import artifact_path, query_runs
from quantbot_assets.catalog.register import register_runs
from quantbot_assets.catalog.writer import catalog_writer
from quantbot_assets_tests.catalog.runbuilder import build_run, empty_table, paths_table

WRITERS = 3
READERS = 3
BATCHES = 3
RUNS_PER_BATCH = 3


def _writer(db: Path, root: Path, exports: Path, batches: list[list[Path]], out: mp.Queue) -> None:
    failures: list[str] = []
    for batch in batches:
        try:
            with catalog_writer(db) as conn:
                register_runs(conn, root, batch)
                refresh_exports(conn, exports)
        except Exception:
            failures.append(traceback.format_exc())
    out.put(("writer", 0, failures))


def _reader(db: Path, done: multiprocessing.synchronize.Event, out: mp.Queue) -> None:
    ok = 0
    failures: list[str] = []
    while not done.is_set() or ok < 5:
        try:
            query_runs(db, limit=5)
            artifact_path(db, "w0-b0-r0", "paths")
            ok += 1
            time.sleep(0.02)  # leave the writers some of the two cores
        except Exception:
            failures.append(traceback.format_exc())
    out.put(("reader", ok, failures))


def test_concurrent_writers_and_readers_have_zero_failures(tmp_path):
    root, db, exports = tmp_path / "runs", tmp_path / "catalog.duckdb", tmp_path / "exports"
    plan: list[list[list[Path]]] = []
    for w in range(WRITERS):
        batches = []
        for b in range(BATCHES):
            batch = []
            for r in range(RUNS_PER_BATCH):
                run_id = f"w{w}-b{b}-r{r}"
                tables = {
                    "alerts": empty_table("alerts"),
                    "paths": paths_table(
                        run_id, "2024-01-03", {"alice": [(True, False, False, 2.0, -1.0)]}
                    ),
                }
                batch.append(build_run(root, run_id, tables, partition_key=f"2024-01-{1 + r:02d}"))
            batches.append(batch)
        plan.append(batches)
    with catalog_writer(db) as conn:
        register_runs(conn, root, [])  # creates the tables and the first snapshot

    ctx = mp.get_context("fork")
    out = ctx.Queue()
    done = ctx.Event()
    readers = [ctx.Process(target=_reader, args=(db, done, out)) for _ in range(READERS)]
    writers = [
        ctx.Process(target=_writer, args=(db, root, exports, plan[w], out)) for w in range(WRITERS)
    ]
    for proc in readers + writers:
        proc.start()
    for proc in writers:
        proc.join(120)
    done.set()
    for proc in readers:
        proc.join(120)
    results = [out.get(timeout=10) for _ in range(WRITERS + READERS)]

    failures = [f for _, _, fs in results for f in fs]
    assert failures == [], failures[0]
    assert all(ok >= 5 for kind, ok, _ in results if kind == "reader")
    total = WRITERS * BATCHES * RUNS_PER_BATCH
    assert len(query_runs(db, limit=1000)) == total
    assert (
        artifact_path(db, "w2-b2-r2", "paths")
        == root / "2024-01/run_id=w2-b2-r2/truth/paths.parquet"
    )


def _hold_database(db: Path, seconds: float, ready: multiprocessing.synchronize.Event) -> None:
    conn = duckdb.connect(str(db))
    ready.set()
    time.sleep(seconds)
    conn.close()


def test_writer_waits_for_a_foreign_duckdb_lock(tmp_path):
    db = tmp_path / "catalog.duckdb"
    with catalog_writer(db):
        pass
    ctx = mp.get_context("fork")
    ready = ctx.Event()
    holder = ctx.Process(target=_hold_database, args=(db, 0.5, ready))
    holder.start()
    assert ready.wait(30)
    with catalog_writer(
        db
    ) as conn:  # retries DuckDB's "Could not set lock" until the holder leaves
        assert conn.execute("SELECT count(*) FROM backtest_runs_catalog").fetchone() == (0,)
    holder.join(30)
