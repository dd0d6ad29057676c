"""The catalog snapshot published to the bucket; `catalog-query` from a machine without the catalog."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from quantbot_assets.catalog.writer import catalog_writer
from quantbot_assets.cli import main
from quantbot_assets.storage import list_files, open_location
from quantbot_assets_tests.catalog.runbuilder import (
    build_failed_run,
    build_run,
    empty_table,
    paths_table,
)


@pytest.fixture(autouse=True)
def _no_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "fsync", lambda fd: None)


def _sync(tmp_path, runs, db) -> None:
    argv = ["backtest", "catalog-sync", "--base-dir", str(runs), "--duckdb", str(db)]
    assert main([*argv, "--exports-dir", str(tmp_path / "exports")]) == 0


def _query(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["backtest", "catalog-query", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_writer_publishes_and_a_reader_elsewhere_queries_the_bucket(
    bucket, tmp_path, monkeypatch, capsys
):
    writer_disk, runs = tmp_path / "writer", tmp_path / "writer" / "runs"
    tables = {
        "alerts": empty_table("alerts"),
        "paths": paths_table("run-1", "2024-01-03", {"alice": [(True, False, False, 2.5, -10.0)]}),
    }
    build_run(runs, "run-1", tables)
    build_failed_run(runs, "run-2")
    url = f"{bucket}/catalog/backtest_catalog.duckdb"
    monkeypatch.setenv("QUANTBOT_CATALOG_URL", url)
    _sync(tmp_path, runs, writer_disk / "catalog.duckdb")
    assert "" in list_files(open_location(url))  # one object, the snapshot

    # Another machine: no catalog on its disk, only the URL.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QUANTBOT_CATALOG", str(tmp_path / "elsewhere" / "none.duckdb"))
    code, out, _ = _query(capsys, "--json")
    assert code == 0
    rows = json.loads(out)
    assert sorted((r["run_id"], r["status"]) for r in rows) == [
        ("run-1", "completed"),
        ("run-2", "failed"),
    ]

    # A second writer update is seen by the next reader; the writer holding its lock blocks nobody.
    build_run(runs, "run-3", tables)
    _sync(tmp_path, runs, writer_disk / "catalog.duckdb")
    monkeypatch.delenv("QUANTBOT_CATALOG_URL")
    with catalog_writer(writer_disk / "catalog.duckdb"):
        code, out, _ = _query(capsys, "--duckdb", url, "--json")
    assert code == 0
    assert {r["run_id"] for r in json.loads(out)} == {"run-1", "run-2", "run-3"}
    shutil.rmtree(writer_disk)
    code, out, _ = _query(capsys, "--duckdb", url, "--status", "completed", "--json")
    assert {r["run_id"] for r in json.loads(out)} == {"run-1", "run-3"}


def test_catalog_query_names_a_missing_snapshot_in_one_line(bucket, capsys):
    code, _out, err = _query(capsys, "--duckdb", f"{bucket}/catalog/none.duckdb")
    assert code == 2
    assert err.strip() == f"error: {bucket}/catalog/none.duckdb: no such object"
    code, _, err = _query(capsys, "--duckdb", "s3://qb-no-such-bucket/catalog.duckdb")
    assert code == 2
    assert (
        err.strip()
        == "error: s3://qb-no-such-bucket/catalog.duckdb: no such bucket 'qb-no-such-bucket'"
    )


def test_a_failed_upload_leaves_the_local_snapshot_stale_for_the_next_sync(
    s3_env, tmp_path, monkeypatch, capsys
):
    runs = tmp_path / "runs"
    build_failed_run(runs, "run-9")
    monkeypatch.setenv("QUANTBOT_CATALOG_URL", "s3://qb-no-such-bucket/catalog.duckdb")
    argv = [
        "backtest",
        "catalog-sync",
        "--base-dir",
        str(runs),
        "--duckdb",
        str(tmp_path / "c.duckdb"),
    ]
    assert main([*argv, "--exports-dir", str(tmp_path / "exports")]) == 2
    assert "no such bucket" in capsys.readouterr().err
    from quantbot_assets.catalog.writer import snapshot_is_stale

    assert snapshot_is_stale(tmp_path / "c.duckdb")
