"""Issue 10 item 3: one bad run directory never stops cataloguing, exports never leave the root."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from quantbot_assets.catalog import register as register_module
from quantbot_assets.catalog import validate as validate_module
from quantbot_assets.catalog.exports import refresh_exports
from quantbot_assets.catalog.queries import catalog_reader
from quantbot_assets.catalog.register import sync_catalog
from quantbot_assets.catalog.tables import REJECTED_TABLE, RUNS_TABLE
from quantbot_assets.catalog.validate import MAX_MANIFEST_BYTES, Rejection, validate_run_dir
from quantbot_assets.catalog.writer import (
    catalog_writer,
    publish_snapshot,
    snapshot_path,
    sweep_stale_temps,
)
from quantbot_assets.rundir import MANIFEST_FILE, SUCCESS_MARKER
from quantbot_assets_tests.catalog.runbuilder import build_run, empty_table, paths_table


def _tables(run_id: str, day: str = "2024-01-03", caller: str = "alice") -> dict:
    return {
        "alerts": empty_table("alerts"),
        "paths": paths_table(run_id, day, {caller: [(True, False, False, 2.5, -300.0)] * 3}),
    }


def _edit(run_dir: Path, **changes: object) -> None:
    path = run_dir / MANIFEST_FILE
    data = json.loads(path.read_text())
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        target = data
        for key in parents:
            target = target[key]
        target[last] = value
    path.write_text(json.dumps(data))


def _reason(report, name: str) -> str:
    [text] = [text for path, text in report.rejected if path.endswith(name)]
    return text.split(":")[0]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"created_at": "0001-01-01T00:00:00+01:00"}, "timestamp_out_of_range"),
        ({"created_at": "9999-12-31T23:59:59-01:00"}, "timestamp_out_of_range"),
        ({"created_at": "1999-12-31T23:59:59Z"}, "timestamp_out_of_range"),
        ({"completed_at": "2999-01-01T00:00:00Z"}, "timestamp_out_of_range"),
        ({"started_at": "2999-01-01T00:00:00Z"}, "timestamp_out_of_range"),
        ({"dataset__calls_count": 2**70}, "value_out_of_range"),
        ({"dataset__calls_count": -1}, "value_out_of_range"),
        ({"artifacts__paths__rows": -3}, "value_out_of_range"),
        ({"artifacts__paths__bytes": 2**64}, "value_out_of_range"),
    ],
)
def test_out_of_range_values_are_rejected_and_the_batch_goes_on(
    conn, runs_root, changes, reason
) -> None:
    bad = build_run(runs_root, "bad", _tables("bad"))
    _edit(bad, **changes)
    build_run(runs_root, "good", _tables("good"))
    report = sync_catalog(conn, runs_root)
    assert report.registered == ["good"]
    assert _reason(report, "run_id=bad") == reason


def test_a_timestamp_within_a_day_ahead_is_accepted(conn, runs_root) -> None:
    soon = datetime.now(UTC) + timedelta(hours=20)
    build_run(runs_root, "soon", _tables("soon"), completed=soon)
    assert sync_catalog(conn, runs_root).registered == ["soon"]


def test_a_fifo_run_json_is_refused_without_opening_it(conn, runs_root) -> None:
    bad = build_run(runs_root, "fifo", _tables("fifo"))
    (bad / MANIFEST_FILE).unlink()
    os.mkfifo(bad / MANIFEST_FILE)  # opening it for reading would block forever
    fifo_marker = build_run(runs_root, "fifo-marker", _tables("fifo-marker"))
    (fifo_marker / SUCCESS_MARKER).unlink()
    os.mkfifo(fifo_marker / SUCCESS_MARKER)
    build_run(runs_root, "good", _tables("good"))
    report = sync_catalog(conn, runs_root)
    assert report.registered == ["good"]
    assert _reason(report, "run_id=fifo") == "not_a_regular_file"
    assert _reason(report, "run_id=fifo-marker") == "not_a_regular_file"


def test_an_oversized_run_json_is_refused_unread(conn, runs_root, monkeypatch) -> None:
    bad = build_run(runs_root, "huge", _tables("huge"))
    with open(bad / MANIFEST_FILE, "a") as handle:  # still valid JSON: trailing spaces
        handle.write(" " * (MAX_MANIFEST_BYTES + 1))
    read_sizes: list[int] = []
    real_read = os.read

    def spy(fd: int, n: int) -> bytes:
        read_sizes.append(n)
        return real_read(fd, n)

    monkeypatch.setattr(validate_module.os, "read", spy)
    report = sync_catalog(conn, runs_root)
    assert _reason(report, "run_id=huge") == "manifest_too_large"
    assert read_sizes == []  # refused from its size alone


def test_any_unexpected_error_is_a_rejection_naming_it(conn, runs_root, monkeypatch) -> None:
    build_run(runs_root, "boom", _tables("boom"))
    build_run(runs_root, "good", _tables("good"))
    real = validate_module._read_manifest

    def explode(run_dir: str):
        if run_dir.endswith("run_id=boom"):
            raise OverflowError("date value out of range")
        return real(run_dir)

    monkeypatch.setattr(validate_module, "_read_manifest", explode)
    report = sync_catalog(conn, runs_root)
    assert report.registered == ["good"]
    [(_, text)] = report.rejected
    assert text == "validation_error: OverflowError: date value out of range"


def test_a_row_that_cannot_be_stored_rejects_that_run_only(conn, runs_root, monkeypatch) -> None:
    build_run(runs_root, "odd", _tables("odd"))
    build_run(runs_root, "good", _tables("good"))
    real = register_module._run_row

    def row(run, registered_at):
        values = real(run, registered_at)
        if values["run_id"] == "odd":
            values["dataset_calls_count"] = 2**70  # overflows int64 in Arrow
        return values

    monkeypatch.setattr(register_module, "_run_row", row)
    report = sync_catalog(conn, runs_root)
    assert report.registered == ["good"]
    assert _reason(report, "run_id=odd") == "invalid_row"
    assert conn.execute(f"SELECT count(*) FROM {RUNS_TABLE}").fetchone() == (1,)


def test_undecodable_and_multi_line_directory_names_are_rejected_printably(conn, runs_root) -> None:
    good = build_run(runs_root, "good", _tables("good"))
    month = os.fsencode(good.parent)
    shutil.copytree(good, os.fsdecode(month + b"/run_id=bad\xff"))
    shutil.copytree(good, os.fsdecode(month + b"/run_id=good\n"))
    report = sync_catalog(conn, runs_root)
    assert report.registered == ["good"]
    names = sorted(path for path, _ in report.rejected)
    assert names == ["2024-01/run_id=bad\\xff", "2024-01/run_id=good\\n"]
    for _, text in report.rejected:
        assert text.startswith("bad_run_dir_name") and text.isprintable()
    stored = conn.execute(f"SELECT run_dir FROM {REJECTED_TABLE} ORDER BY 1").fetchall()
    assert [Path(r[0]).name for r in stored] == ["run_id=bad\\xff", "run_id=good\\n"]
    assert sync_catalog(conn, runs_root).rejected == report.rejected  # stable on re-sync


def test_run_ids_with_a_trailing_newline_are_refused(runs_root) -> None:
    run_dir = build_run(runs_root, "ok", _tables("ok"))
    _edit(run_dir, run_id="ok\n")
    verdict = validate_run_dir(runs_root, run_dir)
    assert isinstance(verdict, Rejection) and verdict.reason == "run_id_mismatch"


# ---- exports re-check what they read --------------------------------------------------------


def _export_callers(exports: Path) -> set[str]:
    return set(pq.read_table(exports / "paths.parquet").column("caller_name").to_pylist())


def _outside_file(tmp_path: Path) -> Path:
    path = tmp_path / "outside" / "paths.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(_tables("x", caller="OUTSIDE")["paths"], path)
    return path


def test_an_artifact_swapped_for_a_symlink_is_not_read_by_the_exports(
    conn, runs_root, tmp_path
) -> None:
    run_dir = build_run(runs_root, "r1", _tables("r1"))
    sync_catalog(conn, runs_root)
    exports = tmp_path / "exports"
    assert _export_callers(exports) if refresh_exports(conn, exports) else False
    artifact = run_dir / "truth" / "paths.parquet"
    artifact.unlink()
    os.symlink(_outside_file(tmp_path), artifact)
    shutil.rmtree(exports)  # a full rewrite reads every file again

    status = refresh_exports(conn, exports)

    assert "OUTSIDE" not in _export_callers(exports)
    [problem] = [p for p in status.problems if p.artifact_type == "paths"]
    assert "symbolic link" in problem.error and problem.run_id == "r1"


def test_a_run_dir_or_subfolder_swapped_for_a_symlink_is_not_read(
    conn, runs_root, tmp_path
) -> None:
    swapped_dir = build_run(runs_root, "r1", _tables("r1", "2024-01-03"))
    swapped_sub = build_run(
        runs_root, "r2", _tables("r2", "2024-01-04"), partition_key="2024-01-04"
    )
    sync_catalog(conn, runs_root)
    outside = _outside_file(tmp_path)
    moved = tmp_path / "moved"
    shutil.move(swapped_dir, moved)
    shutil.copy(outside, moved / "truth" / "paths.parquet")
    os.symlink(moved, swapped_dir)
    truth = tmp_path / "truth"
    shutil.move(swapped_sub / "truth", truth)
    shutil.copy(outside, truth / "paths.parquet")
    os.symlink(truth, swapped_sub / "truth")

    status = refresh_exports(conn, tmp_path / "exports")

    assert "OUTSIDE" not in _export_callers(tmp_path / "exports")
    assert {p.run_id for p in status.problems if p.artifact_type == "paths"} == {"r1", "r2"}


def test_a_far_future_completion_already_catalogued_does_not_pin_a_partition(
    conn, runs_root, tmp_path
) -> None:
    build_run(runs_root, "old", _tables("old", caller="old"))
    build_run(
        runs_root,
        "new",
        _tables("new", caller="new"),
        created=datetime(2024, 1, 6, tzinfo=UTC),
    )
    sync_catalog(conn, runs_root)
    # A catalog from before the range check may hold such a row.
    conn.execute(
        f"UPDATE {RUNS_TABLE} SET completed_at = TIMESTAMP '2999-01-01' WHERE run_id = 'old'"
    )
    refresh_exports(conn, tmp_path / "exports")
    assert _export_callers(tmp_path / "exports") == {"new"}


# ---- temp files of interrupted publishes ----------------------------------------------------


def test_stale_snapshot_and_export_temps_are_swept_live_ones_kept(
    conn, runs_root, db_path, tmp_path
) -> None:
    build_run(runs_root, "r1", _tables("r1"))
    snapshot = snapshot_path(db_path)
    stale = snapshot.parent / f".{snapshot.name}.dead1234.tmp"
    stale.write_bytes(b"x" * 1000)  # left by a publisher killed half-way
    live = snapshot.parent / f".{snapshot.name}.live5678.tmp"
    live.write_bytes(b"y")
    exports = tmp_path / "exports"
    exports.mkdir()
    stale_export = exports / ".paths.parquet.dead.tmp"
    stale_export.write_bytes(b"z")
    unrelated = snapshot.parent / "notes.tmp"
    unrelated.write_text("mine")
    with open(live, "rb") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)  # a publisher still writing it

        sync_catalog(conn, runs_root)
        refresh_exports(conn, exports)

        assert not stale.exists() and not stale_export.exists()
        assert live.exists() and unrelated.exists()
    assert sweep_stale_temps(snapshot) == [live]
    assert snapshot.exists()


def test_opening_the_writer_sweeps_even_when_nothing_is_published(db_path) -> None:
    with catalog_writer(db_path) as conn:
        publish_snapshot(conn)
    stale = db_path.parent / f".{snapshot_path(db_path).name}.dead.tmp"
    stale.write_bytes(b"x")
    with catalog_writer(db_path):
        pass
    assert not stale.exists()


# ---- the seeds' bus names -------------------------------------------------------------------


def test_bus_views_answer_the_seed_queries_in_the_catalog_and_the_snapshot(
    conn, runs_root, db_path
) -> None:
    build_run(runs_root, "r1", _tables("r1"))
    sync_catalog(conn, runs_root)
    registered = conn.execute(f"SELECT registered_at FROM {RUNS_TABLE}").fetchone()
    assert registered is not None
    for reader in (conn, duckdb.connect(str(snapshot_path(db_path)), read_only=True)):
        rows = reader.execute("SELECT run_id, producer, ingested_at FROM catalog.runs_d").fetchall()
        assert rows == [("r1", "backtest_job", registered[0])]
        arts = reader.execute(
            "SELECT * FROM catalog.artifacts_f WHERE run_id = ? ORDER BY artifact_type", ["r1"]
        ).df()
        assert list(arts["artifact_type"]) == ["alerts", "paths"]
        assert set(arts["producer"]) == {"backtest_job"}
        assert (arts["ingested_at"] == arts["registered_at"]).all()
    with catalog_reader(db_path) as reader:  # what catalog-query opens
        assert reader.execute("SELECT count(*) FROM catalog.runs_d").fetchone() == (1,)


def test_bus_views_in_a_database_named_catalog(tmp_path, runs_root) -> None:
    db = tmp_path / "catalog.duckdb"  # its catalog name is `catalog` itself
    build_run(runs_root, "r1", _tables("r1"))
    with catalog_writer(db) as conn:
        sync_catalog(conn, runs_root)
        assert conn.execute("SELECT run_id, producer FROM catalog.runs_d").fetchall() == [
            ("r1", "backtest_job")
        ]
    with catalog_reader(db) as reader:
        assert reader.execute(
            "SELECT count(*) FROM catalog.artifacts_f WHERE run_id = ?", ["r1"]
        ).fetchone() == (2,)


def test_a_sync_with_nothing_new_still_writes_nothing(conn, runs_root, db_path) -> None:
    build_run(runs_root, "r1", _tables("r1"))
    sync_catalog(conn, runs_root)
    before = snapshot_path(db_path).stat().st_mtime_ns
    sync_catalog(conn, runs_root)
    assert snapshot_path(db_path).stat().st_mtime_ns == before
