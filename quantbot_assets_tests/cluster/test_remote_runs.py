"""Run directories, the catalog and the exports through a bucket (quantbot_assets.remote_runs)."""

from __future__ import annotations

import os

import duckdb
import pytest

from quantbot_assets import remote_runs
from quantbot_assets.catalog.register import register_runs
from quantbot_assets.catalog.writer import catalog_writer
from quantbot_assets.rundir import CHECKS_DIR, SUCCESS_MARKER
from quantbot_assets.storage import StorageError, list_files, open_location, put_file
from quantbot_assets_tests.catalog.runbuilder import build_failed_run, build_run, empty_table


@pytest.fixture(autouse=True)
def _no_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "fsync", lambda fd: None)


def _tables() -> dict:
    return {"alerts": empty_table("alerts"), "paths": empty_table("paths")}


def test_nothing_is_shared_without_the_variables(tmp_path, monkeypatch):
    for name in ("QUANTBOT_RUNS_URL", "QUANTBOT_EXPORTS_URL", "QUANTBOT_CATALOG_URL"):
        monkeypatch.delenv(name, raising=False)
    assert remote_runs.runs_url() is None and remote_runs.exports_url() is None
    assert remote_runs.publish_finished_run("r1", print) is None
    assert remote_runs.pull_catalog(tmp_path / "c.duckdb") is False
    assert remote_runs.publish_exports(tmp_path) is None
    monkeypatch.setenv("QUANTBOT_RUNS_URL", "runs/")
    with pytest.raises(StorageError, match=r"^QUANTBOT_RUNS_URL='runs/' is not a URL"):
        remote_runs.runs_url()


def test_a_finished_run_is_published_with_its_open_checks_settled(bucket, tmp_path):
    runs = tmp_path / "worker" / "runs"
    run_dir = build_run(runs, "r1", _tables(), planned_checks=["paths_schema_as_declared"])
    url = remote_runs.publish_run(runs, "r1", f"{bucket}/runs")
    assert url == f"{bucket}/runs/2024-01/run_id=r1"
    names = set(list_files(open_location(url)))
    assert {"run.json", SUCCESS_MARKER, "truth/paths.parquet"} <= names
    # The check never ran (the run is over): its outcome is `not_run`, in the bucket too.
    assert f"{CHECKS_DIR}/paths_schema_as_declared.json" in names
    assert (run_dir / CHECKS_DIR / "paths_schema_as_declared.json").exists()


def test_a_run_without_marker_is_never_published(bucket, tmp_path):
    runs = tmp_path / "runs"
    build_run(runs, "r2", _tables(), marker=None, status="running")
    assert remote_runs.publish_run(runs, "r2", f"{bucket}/runs") is None
    assert remote_runs.publish_run(runs, "no-such-run", f"{bucket}/runs") is None
    assert list_files(open_location(f"{bucket}/runs")) == {}


def test_the_sensor_side_mirrors_only_marked_runs(bucket, tmp_path):
    worker = tmp_path / "worker" / "runs"
    build_run(worker, "done", _tables())
    build_failed_run(worker, "failed")
    for run_id in ("done", "failed"):
        remote_runs.publish_run(worker, run_id, f"{bucket}/runs")
    # A directory still being uploaded: artifacts and run.json, no marker yet.
    half = build_run(worker, "half", _tables(), marker=None, status="running")
    dest = open_location(f"{bucket}/runs/2024-01/run_id=half")
    put_file(half / "run.json", dest.child("run.json"))
    put_file(half / "truth/paths.parquet", dest.child("truth/paths.parquet"))

    daemon = tmp_path / "daemon" / "runs"
    mirrored = remote_runs.mirror_marked_runs(f"{bucket}/runs", daemon)
    assert sorted(p.name for p in mirrored) == ["run_id=done", "run_id=failed"]
    assert not (daemon / "2024-01/run_id=half").exists()
    assert (daemon / "2024-01/run_id=done/truth/paths.parquet").is_file()

    # The catalog run elsewhere gets the daemon's paths and mirrors just those.
    catalog_worker = tmp_path / "catalog-worker" / "runs"
    local = remote_runs.localize_run_dirs(
        [str(daemon / "2024-01/run_id=done")], catalog_worker, f"{bucket}/runs"
    )
    assert local == [catalog_worker / "2024-01/run_id=done"]
    assert (local[0] / SUCCESS_MARKER).exists()
    assert not (catalog_worker / "2024-01/run_id=failed").exists()
    with pytest.raises(StorageError, match="not a run directory"):
        remote_runs.localize_run_dirs(["/x/run_id=done"], catalog_worker, f"{bucket}/runs")


def test_catalog_writers_on_two_machines_continue_one_catalog(bucket, tmp_path, monkeypatch):
    monkeypatch.setenv("QUANTBOT_CATALOG_URL", f"{bucket}/catalog/backtest_catalog.duckdb")
    source = tmp_path / "source" / "runs"
    for run_id in ("a", "b"):
        build_run(source, run_id, _tables())
        remote_runs.publish_run(source, run_id, f"{bucket}/runs")

    def catalog_on(machine: str, run_id: str) -> set[str]:
        runs = tmp_path / machine / "runs"
        db = tmp_path / machine / "catalog.duckdb"
        todo = remote_runs.localize_run_dirs([f"x/2024-01/run_id={run_id}"], runs, f"{bucket}/runs")
        remote_runs.pull_catalog(db)
        with catalog_writer(db) as conn:
            register_runs(conn, runs, todo)
            return {
                r[0] for r in conn.execute("SELECT run_id FROM backtest_runs_catalog").fetchall()
            }

    assert catalog_on("one", "a") == {"a"}
    assert catalog_on("two", "b") == {"a", "b"}  # started from machine one's published state
    assert catalog_on("one", "a") == {"a", "b"}  # registered again: still once
    snapshot = tmp_path / "snap.duckdb"
    from quantbot_assets.storage import get_file

    get_file(open_location(f"{bucket}/catalog/backtest_catalog.duckdb"), snapshot)
    with duckdb.connect(str(snapshot), read_only=True) as conn:
        count = conn.execute("SELECT count(*) FROM backtest_runs_catalog").fetchone()
    assert count == (2,)


def test_exports_are_published_status_file_last(bucket, tmp_path, monkeypatch):
    monkeypatch.setenv("QUANTBOT_EXPORTS_URL", f"{bucket}/exports")
    exports = tmp_path / "exports"
    exports.mkdir()
    for name in ("_export_status.json", "paths.parquet", "trades.parquet", ".tmp.parquet"):
        (exports / name).write_text(name)
    assert remote_runs.publish_exports(exports) == f"{bucket}/exports"
    assert sorted(list_files(open_location(f"{bucket}/exports"))) == [
        "_export_status.json",
        "paths.parquet",
        "trades.parquet",
    ]
