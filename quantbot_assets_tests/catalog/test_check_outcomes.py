"""The catalog records a run as complete only when its checks ran, and stores their outcomes.

A `_SUCCESS` run whose manifest plans checks is pending (not catalogued, not
rejected) until every planned check has an outcome in `checks/`; then it is
catalogued with `checks_passed` / `checks_failed` and one row per check.
Manifests before 1.2.0 plan no checks and are catalogued as before.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb

from quantbot_assets.catalog.register import register_runs, sync_catalog
from quantbot_assets.catalog.scan import scan_markers
from quantbot_assets.catalog.tables import CHECKS_TABLE, RUNS_TABLE, ensure_tables
from quantbot_assets.catalog.validate import Rejection, validate_run_dir
from quantbot_assets.defs.catalog.sensors import build_catalog_sensor
from quantbot_assets.run_directories import RunDirectories
from quantbot_assets.rundir import (
    SUCCESS_MARKER,
    CheckRecord,
    check_record_path,
    read_manifest,
    run_dir_path,
    write_check_record,
    write_manifest,
)
from quantbot_assets.stale_runs import mark_run_dir_failed
from quantbot_assets_tests.catalog.runbuilder import build_run, empty_table, paths_table

PLANNED = ["paths_calls_conserved", "paths_schema_as_declared"]


def _tables(run_id: str) -> dict:
    return {
        "alerts": empty_table("alerts"),
        "paths": paths_table(run_id, "2024-01-03", {"alice": [(True, False, False, 2.5, -3.0)]}),
    }


def _record(run_dir: Path, name: str, outcome: str = "passed") -> None:
    write_check_record(
        run_dir,
        CheckRecord(
            check_name=name,
            outcome=outcome,  # type: ignore[arg-type]
            passed=outcome == "passed",
            recorded_at="2024-01-05T12:00:00Z",
        ),
    )


def _checks(conn: duckdb.DuckDBPyConnection, run_id: str) -> tuple:
    return (
        conn.execute(
            f"SELECT checks_passed, checks_failed FROM {RUNS_TABLE} WHERE run_id = ?", [run_id]
        ).fetchone()
        or ()
    )


def test_a_success_run_waits_for_its_checks_then_is_catalogued_with_them(conn, runs_root):
    run_dir = build_run(runs_root, "r1", _tables("r1"), planned_checks=PLANNED)
    assert validate_run_dir(runs_root, run_dir) is None  # pending, not rejected

    report = sync_catalog(conn, runs_root)
    assert report.registered == [] and report.rejected == [] and report.incomplete == 1

    _record(run_dir, "paths_calls_conserved")
    assert sync_catalog(conn, runs_root).registered == []  # one of two: still pending

    _record(run_dir, "paths_schema_as_declared", "failed")
    report = sync_catalog(conn, runs_root)
    assert report.registered == ["r1"]
    assert _checks(conn, "r1") == (1, 1)
    rows = conn.execute(
        f"SELECT check_name, outcome, passed FROM {CHECKS_TABLE} WHERE run_id = 'r1' ORDER BY 1"
    ).fetchall()
    assert rows == [
        ("paths_calls_conserved", "passed", True),
        ("paths_schema_as_declared", "failed", False),
    ]
    assert sync_catalog(conn, runs_root).registered == []  # idempotent


def test_runs_without_planned_checks_are_catalogued_as_before(conn, runs_root):
    build_run(runs_root, "old", _tables("old"))  # manifest without planned_checks (1.1.0)
    legacy = build_run(runs_root, "v100", _tables("v100"))
    manifest = json.loads((legacy / "run.json").read_text())
    manifest["schema_version"] = "1.0.0"
    del manifest["planned_checks"]
    (legacy / "run.json").write_text(json.dumps(manifest))
    build_run(runs_root, "none", _tables("none"), planned_checks=[])

    report = sync_catalog(conn, runs_root)

    assert sorted(report.registered) == ["none", "old", "v100"]
    assert _checks(conn, "old") == (None, None)
    assert _checks(conn, "v100") == (None, None)
    assert _checks(conn, "none") == (0, 0)


def test_a_bad_check_record_is_rejected_with_a_reason(conn, runs_root):
    run_dir = build_run(
        runs_root,
        "r1",
        _tables("r1"),
        planned_checks=PLANNED,
        check_outcomes=dict.fromkeys(PLANNED, "passed"),
    )
    check_record_path(run_dir, PLANNED[0]).write_text('{"check_name": "other"}')
    verdict = validate_run_dir(runs_root, run_dir)
    assert isinstance(verdict, Rejection) and verdict.reason.value == "check_result_invalid"


def test_the_sensor_scan_keeps_a_run_open_until_its_checks_ran(runs_root):
    run_dir = build_run(runs_root, "r1", _tables("r1"), planned_checks=PLANNED)
    events, cursor = scan_markers(runs_root, None)
    assert events == []
    for name in PLANNED:
        _record(run_dir, name)
    events, cursor = scan_markers(runs_root, cursor)
    assert [e.run_key for e in events] == ["run_id=r1:_SUCCESS"]
    assert scan_markers(runs_root, cursor)[0] == []


def test_checks_of_a_run_that_ended_without_them_become_not_run(tmp_path: Path, runs_root):
    """Killed or canceled after `_SUCCESS`: the catalog registers it, checks "not_run"."""
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        job = dg.Definitions(
            jobs=[dg.JobDefinition(name="j", graph_def=dg.GraphDefinition("g"))]
        ).resolve_job_def("j")
        ended = instance.create_run_for_job(job)
        instance.report_run_failed(ended, "canceled")
        running = instance.create_run_for_job(job)
        instance.handle_run_event(
            running.run_id,
            dg.DagsterEvent(event_type_value="PIPELINE_START", job_name=running.job_name),
        )
        dirs = {}
        for run in (ended, running):
            created = instance.get_run_record_by_id(run.run_id).create_timestamp  # type: ignore[union-attr]
            dirs[run.run_id] = build_run(
                runs_root, run.run_id, _tables(run.run_id), created=created, planned_checks=PLANNED
            )
        sensor = build_catalog_sensor(runs_root)
        first = sensor(dg.build_sensor_context(instance=instance))
        assert not first.run_requests  # type: ignore[union-attr]
        second = sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor))  # type: ignore[union-attr]
        [request] = second.run_requests  # type: ignore[union-attr]
        assert request.run_config["ops"]["backtest_catalog"]["config"]["run_dirs"] == [
            str(dirs[ended.run_id])
        ]
        not_run = json.loads(check_record_path(dirs[ended.run_id], PLANNED[0]).read_text())
        assert not_run["outcome"] == "not_run" and "FAILURE" in not_run["detail"]
        assert not check_record_path(dirs[running.run_id], PLANNED[0]).exists()

        # A process found dead after _SUCCESS: the same, at once.
        run_dirs = RunDirectories(runs_dir=str(runs_root), project_dir=str(tmp_path))
        mark_run_dir_failed(instance, run_dirs, running.run_id, "process gone")
        assert (dirs[running.run_id] / SUCCESS_MARKER).exists()
        with duckdb.connect(str(tmp_path / "c.duckdb")) as conn:
            report = register_runs(conn, runs_root, list(dirs.values()))
            assert sorted(report.registered) == sorted(dirs)
            for run_id in dirs:
                assert _checks(conn, run_id) == (0, 2)


def test_an_older_catalog_gains_the_check_columns(tmp_path: Path, runs_root):
    with duckdb.connect(str(tmp_path / "old.duckdb")) as conn:
        ensure_tables(conn)
        conn.execute(f"DROP TABLE {CHECKS_TABLE}")
        conn.execute(f"ALTER TABLE {RUNS_TABLE} DROP COLUMN checks_failed")
        conn.execute(f"ALTER TABLE {RUNS_TABLE} DROP COLUMN checks_passed")
        build_run(
            runs_root,
            "r1",
            _tables("r1"),
            planned_checks=PLANNED,
            check_outcomes=dict.fromkeys(PLANNED, "passed"),
        )
        assert sync_catalog(conn, runs_root).registered == ["r1"]
        assert _checks(conn, "r1") == (2, 0)
        assert conn.execute("SELECT checks_passed FROM catalog.runs_d").fetchall() == [(2,)]


def test_a_manifest_round_trips_planned_checks(tmp_path: Path):
    run_dir = build_run(tmp_path, "r1", _tables("r1"), planned_checks=PLANNED)
    manifest = read_manifest(run_dir)
    assert manifest.planned_checks == PLANNED and manifest.schema_version == "1.2.0"
    write_manifest(run_dir, manifest)
    assert run_dir == run_dir_path(tmp_path, "r1", datetime(2024, 1, 5, 12, tzinfo=UTC))
