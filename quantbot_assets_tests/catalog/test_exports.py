from __future__ import annotations

import json
from datetime import UTC, datetime

import pyarrow.parquet as pq

from quantbot_assets.catalog.exports import STATUS_FILE, export_schema, refresh_exports
from quantbot_assets.catalog.register import sync_catalog
from quantbot_assets.schemas import ARTIFACT_SCHEMAS
from quantbot_assets_tests.catalog.runbuilder import build_failed_run, build_run, paths_table


def _paths(run_id: str, day: str, n: int) -> dict:
    return {"paths": paths_table(run_id, day, {"alice": [(True, False, False, 2.0, -100.0)] * n})}


def test_exports_hold_the_latest_completed_version_of_each_partition(conn, runs_root, tmp_path):
    jan5 = datetime(2024, 1, 5, tzinfo=UTC)
    build_run(
        runs_root, "old", _paths("old", "2024-01-03", 2), created=jan5, partition_key="2024-01-03"
    )
    build_run(
        runs_root,
        "new",
        _paths("new", "2024-01-03", 3),
        created=datetime(2024, 1, 6, tzinfo=UTC),
        partition_key="2024-01-03",
    )
    build_run(
        runs_root,
        "other",
        _paths("other", "2024-01-04", 1),
        created=jan5,
        partition_key="2024-01-04",
    )
    build_failed_run(runs_root, "failed", created=datetime(2024, 1, 9, tzinfo=UTC))
    sync_catalog(conn, runs_root)
    exports = tmp_path / "exports"

    status = refresh_exports(conn, exports)

    paths = pq.read_table(exports / "paths.parquet")
    assert paths.schema == export_schema("paths")  # the artifact's columns and params_hash
    assert sorted(set(paths.column("run_id").to_pylist())) == ["new", "other"]
    assert paths.num_rows == 4
    assert status.files["paths"].runs == ["new", "other"]
    assert status.files["paths"].partitions == 2
    assert status.problems == []
    # every artifact type has a file, empty when nothing is catalogued
    for name in ARTIFACT_SCHEMAS:
        assert pq.read_table(exports / f"{name}.parquet").schema == export_schema(name)
    on_disk = json.loads((exports / STATUS_FILE).read_text())
    assert on_disk["files"]["paths"]["rows"] == 4
    assert on_disk["generated_at"].endswith("Z")


def test_unchanged_selection_is_not_rewritten(conn, runs_root, tmp_path):
    build_run(runs_root, "a", _paths("a", "2024-01-03", 2))
    sync_catalog(conn, runs_root)
    exports = tmp_path / "exports"
    refresh_exports(conn, exports)
    inode = (exports / "paths.parquet").stat().st_ino

    refresh_exports(conn, exports)
    assert (exports / "paths.parquet").stat().st_ino == inode

    build_run(runs_root, "b", _paths("b", "2024-01-04", 1), partition_key="2024-01-04")
    sync_catalog(conn, runs_root)
    status = refresh_exports(conn, exports)
    assert (exports / "paths.parquet").stat().st_ino != inode
    assert status.files["paths"].rows == 3


def test_artifact_deleted_after_cataloguing_is_reported_not_hidden(conn, runs_root, tmp_path):
    gone = build_run(runs_root, "gone", _paths("gone", "2024-01-03", 2))
    build_run(runs_root, "kept", _paths("kept", "2024-01-04", 1), partition_key="2024-01-04")
    sync_catalog(conn, runs_root)
    (gone / "truth/paths.parquet").unlink()

    status = refresh_exports(conn, tmp_path / "exports")

    assert status.files["paths"].runs == ["kept"]
    assert [(p.run_id, p.partition_key) for p in status.problems] == [("gone", "2024-01-03")]


def test_corrupt_file_is_named_and_the_rest_exported(conn, runs_root, tmp_path):
    bad = build_run(runs_root, "bad", _paths("bad", "2024-01-03", 2))
    build_run(runs_root, "kept", _paths("kept", "2024-01-04", 1), partition_key="2024-01-04")
    sync_catalog(conn, runs_root)
    (bad / "truth/paths.parquet").write_bytes(b"PAR1 garbage PAR1")

    status = refresh_exports(conn, tmp_path / "exports")

    assert status.files["paths"].runs == ["kept"]
    assert pq.read_table(tmp_path / "exports" / "paths.parquet").num_rows == 1
    assert [p.run_id for p in status.problems] == ["bad"]
