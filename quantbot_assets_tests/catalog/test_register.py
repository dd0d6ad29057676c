from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from quantbot_assets.catalog.queries import query_runs
from quantbot_assets.catalog.register import (
    catalog_stats,
    format_stats,
    register_runs,
    sync_catalog,
)
from quantbot_assets.catalog.tables import ARTIFACTS_TABLE, REJECTED_TABLE, RUNS_TABLE
from quantbot_assets.catalog.writer import snapshot_path
from quantbot_assets.rundir import (
    FAILED_MARKER,
    MANIFEST_FILE,
    SUCCESS_MARKER,
    read_manifest,
    write_manifest,
    write_marker,
)
from quantbot_assets_tests.catalog.runbuilder import (
    build_failed_run,
    build_run,
    empty_table,
    paths_table,
    trades_table,
)


def _paths(run_id: str) -> dict:
    return {
        "alerts": empty_table("alerts"),
        "paths": paths_table(
            run_id, "2024-01-03", {"alice": [(True, False, False, 2.5, -300.0)] * 3}
        ),
    }


def _table(conn: duckdb.DuckDBPyConnection, table: str) -> list[tuple]:
    return conn.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()


def test_sync_catalogues_completed_and_failed_runs_only(conn, runs_root):
    build_run(runs_root, "done", _paths("done"))
    build_failed_run(runs_root, "broke")
    build_run(runs_root, "running", _paths("running"), status="running", marker=None)

    report = sync_catalog(conn, runs_root)

    assert sorted(report.registered) == ["broke", "done"]
    assert report.failed == ["broke"]
    assert report.incomplete == 1
    assert report.rejected == []
    rows = dict(conn.execute(f"SELECT run_id, status FROM {RUNS_TABLE}").fetchall())
    assert rows == {"done": "completed", "broke": "failed"}
    error = conn.execute(f"SELECT error FROM {RUNS_TABLE} WHERE run_id = 'broke'").fetchone()
    assert error == ("boom",)
    arts = conn.execute(
        f"SELECT artifact_type, rows, relative_path, partition_key FROM {ARTIFACTS_TABLE} ORDER BY 1"
    ).fetchall()
    assert arts == [
        ("alerts", 0, "inputs/alerts.parquet", "2024-01-03"),
        ("paths", 3, "truth/paths.parquet", "2024-01-03"),
    ]


def test_resync_changes_nothing(conn, runs_root, db_path):
    build_run(runs_root, "a", _paths("a"))
    build_failed_run(runs_root, "b")
    bad = build_run(runs_root, "c", _paths("c"))
    (bad / "truth/paths.parquet").write_bytes(b"not parquet at all")
    sync_catalog(conn, runs_root)
    before = {t: _table(conn, t) for t in (RUNS_TABLE, ARTIFACTS_TABLE, REJECTED_TABLE)}
    snapshot_mtime = snapshot_path(db_path).stat().st_mtime_ns

    again = sync_catalog(conn, runs_root)
    by_dirs = register_runs(conn, runs_root, [runs_root / "2024-01/run_id=a"])

    assert again.registered == [] and again.skipped == 2
    assert by_dirs.registered == [] and by_dirs.skipped == 1
    assert {t: _table(conn, t) for t in before} == before
    assert snapshot_path(db_path).stat().st_mtime_ns == snapshot_mtime  # nothing republished
    # readers (other users included) can open the snapshot like the database itself
    assert snapshot_path(db_path).stat().st_mode == db_path.stat().st_mode


def test_commit_without_publish_is_published_by_the_next_sync(conn, runs_root, db_path):
    build_run(runs_root, "a", _paths("a"))
    sync_catalog(conn, runs_root)
    # A writer that died after committing, before publishing the snapshot:
    conn.execute(f"UPDATE {RUNS_TABLE} SET job_name = 'patched'")
    assert query_runs(db_path)["job_name"].tolist() == ["backtest_job"]

    sync_catalog(conn, runs_root)  # nothing new in the runs root

    assert query_runs(db_path)["job_name"].tolist() == ["patched"]


def test_catalog_records_dagster_fields(conn, runs_root):
    policy = {"kind": "fixed_stop", "stop_loss_bps": 500}
    build_run(
        runs_root,
        "p1",
        {"trades": trades_table("p1", "fixed-stop-5pct", [(100.0, False, 0.5)])},
        run_type="policy",
        partition_key="2024-01-03|fixed-stop-5pct",
        parameters={"policy_id": "fixed-stop-5pct", "policy": policy},
    )
    sync_catalog(conn, runs_root)
    row = conn.execute(
        f"SELECT run_type, policy_id, job_name, partition_keys_json, parameters_json, created_at, marker "
        f"FROM {RUNS_TABLE}"
    ).fetchone()
    assert row[:3] == ("policy", "fixed-stop-5pct", "backtest_job")
    assert json.loads(row[3]) == {"trades": ["2024-01-03|fixed-stop-5pct"]}
    assert json.loads(row[4])["policy"] == policy
    assert row[5] == datetime(2024, 1, 5, 12, 0, tzinfo=UTC).replace(tzinfo=None)  # naive UTC
    assert row[6] == SUCCESS_MARKER


def _edit_manifest(run_dir: Path, **changes) -> None:
    manifest = read_manifest(run_dir)
    for key, value in changes.items():
        setattr(manifest, key, value)
    write_manifest(run_dir, manifest)


def _unreadable(run_dir: Path) -> None:
    (run_dir / MANIFEST_FILE).write_text("{not json")


def _invalid(run_dir: Path) -> None:
    data = json.loads((run_dir / MANIFEST_FILE).read_text())
    del data["run_type"]
    (run_dir / MANIFEST_FILE).write_text(json.dumps(data))


def _no_manifest(run_dir: Path) -> None:
    (run_dir / MANIFEST_FILE).unlink()


def _unknown_manifest_version(run_dir: Path) -> None:
    _edit_manifest(run_dir, schema_version="9.9.9")


def _unknown_artifact_version(run_dir: Path) -> None:
    manifest = read_manifest(run_dir)
    manifest.artifacts["paths"].schema_version = "2.0.0"
    write_manifest(run_dir, manifest)


def _missing_file(run_dir: Path) -> None:
    (run_dir / "truth/paths.parquet").unlink()


def _corrupt_file(run_dir: Path) -> None:
    path = run_dir / "truth/paths.parquet"
    path.write_bytes(path.read_bytes()[:-20] + b"\0" * 20)


def _row_mismatch(run_dir: Path) -> None:
    manifest = read_manifest(run_dir)
    manifest.artifacts["paths"].rows = 99
    write_manifest(run_dir, manifest)


def _wrong_columns(run_dir: Path) -> None:
    shutil.copy(run_dir / "inputs/alerts.parquet", run_dir / "truth/paths.parquet")
    manifest = read_manifest(run_dir)
    manifest.artifacts["paths"].rows = 0
    write_manifest(run_dir, manifest)


def _artifact_path(value: str):
    def change(run_dir: Path) -> None:
        manifest = read_manifest(run_dir)
        manifest.artifacts["paths"].path = value
        write_manifest(run_dir, manifest)

    return change


def _symlinked_artifact(run_dir: Path) -> None:
    outside = run_dir.parent.parent.parent / "elsewhere.parquet"
    shutil.move(run_dir / "truth/paths.parquet", outside)
    os.symlink(outside, run_dir / "truth/paths.parquet")


def _symlinked_folder(run_dir: Path) -> None:
    outside = run_dir.parent.parent.parent / "elsewhere_truth"
    shutil.move(run_dir / "truth", outside)
    os.symlink(outside, run_dir / "truth")


def _run_id_mismatch(run_dir: Path) -> None:
    _edit_manifest(run_dir, run_id="someone-else")


def _unknown_artifact_type(run_dir: Path) -> None:
    manifest = read_manifest(run_dir)
    manifest.artifacts["features"] = manifest.artifacts["paths"].model_copy()
    write_manifest(run_dir, manifest)


def _status_mismatch(run_dir: Path) -> None:
    _edit_manifest(run_dir, status="running")


def _both_markers(run_dir: Path) -> None:
    write_marker(run_dir, FAILED_MARKER)


def _planned_missing(run_dir: Path) -> None:
    _edit_manifest(run_dir, planned_artifacts=["alerts", "paths", "trades"])


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_unreadable, "manifest_invalid"),
        (_invalid, "manifest_invalid"),
        (_no_manifest, "manifest_unreadable"),
        (_unknown_manifest_version, "unknown_schema_version"),
        (_unknown_artifact_version, "unknown_schema_version"),
        (_missing_file, "missing_artifact"),
        (_corrupt_file, "corrupt_artifact"),
        (_row_mismatch, "row_count_mismatch"),
        (_wrong_columns, "schema_mismatch"),
        (_artifact_path("../../other/truth/paths.parquet"), "unsafe_artifact_path"),
        (_artifact_path("/etc/passwd"), "unsafe_artifact_path"),
        (_symlinked_artifact, "symlink"),
        (_symlinked_folder, "symlink"),
        (_artifact_path("truth//paths.parquet"), "unsafe_artifact_path"),
        (_run_id_mismatch, "run_id_mismatch"),
        (_unknown_artifact_type, "unknown_artifact_type"),
        (_status_mismatch, "status_mismatch"),
        (_both_markers, "conflicting_markers"),
        (_planned_missing, "missing_artifact"),
    ],
)
def test_bad_run_is_rejected_with_reason_and_sync_goes_on(conn, runs_root, damage, reason):
    bad = build_run(runs_root, "bad", _paths("bad"))
    damage(bad)
    build_run(runs_root, "good", _paths("good"))

    report = sync_catalog(conn, runs_root)

    assert report.registered == ["good"]
    assert [(path, text.split(":")[0]) for path, text in report.rejected] == [
        ("2024-01/run_id=bad", reason)
    ]
    rows = conn.execute(f"SELECT run_dir, run_id, reason, detail FROM {REJECTED_TABLE}").fetchall()
    assert [(Path(r[0]).name, r[1], r[2]) for r in rows] == [("run_id=bad", "bad", reason)]
    assert rows[0][3]  # a detail for humans
    assert conn.execute(
        f"SELECT count(*) FROM {ARTIFACTS_TABLE} WHERE run_id = 'bad'"
    ).fetchone() == (0,)


def test_unsafe_directory_names_and_links_are_rejected(conn, runs_root, tmp_path):
    good = build_run(runs_root, "good", _paths("good"))
    dotted = runs_root / "2024-01" / "run_id=a..b"
    shutil.copytree(good, dotted)
    shutil.copytree(good, runs_root / "2024-01" / "not_a_run")
    outside = tmp_path / "outside_run"
    shutil.copytree(good, outside)
    os.symlink(outside, runs_root / "2024-01" / "run_id=linked")
    os.symlink(runs_root / "2024-01", runs_root / "2024-02")

    report = sync_catalog(conn, runs_root)

    assert report.registered == ["good"]
    reasons = {path: text.split(":")[0] for path, text in report.rejected}
    assert reasons == {
        "2024-01/run_id=a..b": "bad_run_dir_name",
        "2024-01/not_a_run": "bad_run_dir_name",
        "2024-01/run_id=linked": "symlink",
        "2024-02": "symlink",
    }


def test_directory_passed_by_path_outside_root_is_rejected(conn, runs_root, tmp_path):
    stray = build_run(tmp_path / "other_root", "stray", _paths("stray"))
    report = register_runs(conn, runs_root, [stray, runs_root / "2024-01" / ".." / ".." / "x"])
    assert report.registered == []
    assert [text.split(":")[0] for _, text in report.rejected] == ["outside_root", "outside_root"]


def test_repaired_run_is_registered_and_leaves_the_rejected_table(conn, runs_root):
    run_dir = build_run(runs_root, "fixme", _paths("fixme"))
    _row_mismatch(run_dir)
    assert sync_catalog(conn, runs_root).registered == []
    assert conn.execute(f"SELECT count(*) FROM {REJECTED_TABLE}").fetchone() == (1,)

    manifest = read_manifest(run_dir)
    manifest.artifacts["paths"].rows = 3
    write_manifest(run_dir, manifest)

    assert sync_catalog(conn, runs_root).registered == ["fixme"]
    assert conn.execute(f"SELECT count(*) FROM {REJECTED_TABLE}").fetchone() == (0,)


def test_same_run_id_in_two_months_is_rejected_once_catalogued(conn, runs_root):
    build_run(runs_root, "twin", _paths("twin"), created=datetime(2024, 1, 5, tzinfo=UTC))
    assert sync_catalog(conn, runs_root).registered == ["twin"]
    build_run(runs_root, "twin", _paths("twin"), created=datetime(2024, 2, 5, tzinfo=UTC))
    report = sync_catalog(conn, runs_root)
    assert report.registered == []
    assert [(p, t.split(":")[0]) for p, t in report.rejected] == [
        ("2024-02/run_id=twin", "duplicate_run_id")
    ]


def test_stats_block(conn, runs_root):
    build_run(runs_root, "a", _paths("a"))
    build_failed_run(runs_root, "b")
    sync_catalog(conn, runs_root)
    stats = catalog_stats(conn)
    assert stats["total_runs"] == 2 and stats["completed"] == 1 and stats["failed"] == 1
    assert format_stats(stats).splitlines() == [
        "Catalog Statistics:",
        "  Total runs: 2",
        "  Completed: 1",
        "  Failed: 1",
        '  By type: { "path-only": 2 }',
        "  Total artifacts: 2",
        '  By type: { "alerts": 1, "paths": 1 }',
        "  Rejected: 0",
    ]


def test_chunked_sync_registers_everything_once(conn, runs_root, monkeypatch):
    from quantbot_assets.catalog import register

    monkeypatch.setattr(register, "CHUNK_RUNS", 2)
    for i in range(5):
        build_run(runs_root, f"c{i}", _paths(f"c{i}"))
    build_run(runs_root, "c0", _paths("c0"), created=datetime(2024, 2, 5, tzinfo=UTC))
    report = sync_catalog(conn, runs_root)
    assert sorted(report.registered) == [f"c{i}" for i in range(5)]
    assert [t.split(":")[0] for _, t in report.rejected] == ["duplicate_run_id"]
