from __future__ import annotations

import json
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq

from quantbot_assets.catalog.exports import STATUS_FILE, export_schema, refresh_exports
from quantbot_assets.catalog.register import sync_catalog
from quantbot_assets.schemas import ARTIFACT_SCHEMAS, schema_for_version
from quantbot_assets_tests.catalog.runbuilder import (
    build_failed_run,
    build_run,
    paths_table,
    trades_table,
)


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


def test_files_of_older_schema_versions_are_catalogued_and_exported(conn, runs_root, tmp_path):
    # A run written before the 1.1.0 columns (ambiguity, window_complete): its manifest names
    # 1.0.0 and its files lack those columns. It is still catalogued, and the exports read its
    # rows with the new columns null next to rows of a 1.1.0 run.
    old = {
        name: table.select(schema_for_version(name, "1.0.0").names)
        for name, table in {
            "paths": paths_table("old", "2024-01-03", {"alice": [(True, False, False, 2.0, -5.0)]}),
            "trades": trades_table("old", "p", [(100.0, False, 0.5), (-50.0, True, None)]),
        }.items()
    }
    assert "window_complete" not in old["paths"].column_names
    assert "optimistic_return_bps" not in old["trades"].column_names
    build_run(
        runs_root,
        "old",
        old,
        partition_key="2024-01-03",
        schema_versions={"paths": "1.0.0", "trades": "1.0.0"},
    )
    new_trades = trades_table("new", "p", [(20.0, False, 0.1)]).set_column(
        ARTIFACT_SCHEMAS["trades"].get_field_index("optimistic_return_bps"),
        ARTIFACT_SCHEMAS["trades"].field("optimistic_return_bps"),
        pa.array([30.0]),
    )
    build_run(
        runs_root,
        "new",
        {
            "paths": paths_table("new", "2024-01-04", {"bob": [(False, False, False, 1.2, -9.0)]}),
            "trades": new_trades,
        },
        partition_key="2024-01-04",
    )
    report = sync_catalog(conn, runs_root)
    assert report.rejected == [] and sorted(report.registered) == ["new", "old"]
    status = refresh_exports(conn, tmp_path / "exports")
    assert status.problems == []
    trades = pq.read_table(tmp_path / "exports" / "trades.parquet")
    assert trades.schema == export_schema("trades")
    by_run = {}
    for row in trades.to_pylist():
        by_run.setdefault(row["run_id"], []).append(row)
    assert len(by_run["old"]) == 2 and len(by_run["new"]) == 1
    for row in by_run["old"]:
        for col in ("ambiguous", "ambiguity_resolved", "optimistic_return_bps", "window_complete"):
            assert row[col] is None, col
    assert by_run["new"][0]["optimistic_return_bps"] == 30.0
    paths = pq.read_table(tmp_path / "exports" / "paths.parquet").to_pylist()
    assert {r["run_id"]: r["window_complete"] for r in paths} == {"old": None, "new": None}


def test_a_file_lacking_columns_of_its_own_version_is_still_rejected(conn, runs_root):
    # The version decides which columns may be missing: a 1.1.0 trades file without the
    # ambiguity columns is a schema mismatch.
    trades = trades_table("bad", "p", [(1.0, False, None)])
    trades = trades.select(schema_for_version("trades", "1.0.0").names)
    build_run(runs_root, "bad", {"trades": trades}, partition_key="2024-01-03")
    report = sync_catalog(conn, runs_root)
    assert report.registered == []
    assert len(report.rejected) == 1 and "lacks column 'ambiguous'" in report.rejected[0][1]
