from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from quantbot_assets.cli import main
from quantbot_assets_tests.catalog.runbuilder import (
    build_failed_run,
    build_run,
    empty_table,
    paths_table,
)


def _cli(*argv: str) -> int:
    """`quantbot backtest ARGV...` in this process: its exit code (stdout, stderr captured)."""
    return main(["backtest", *argv])


@pytest.fixture
def synced(tmp_path: Path, runs_root: Path, db_path: Path, capsys) -> dict[str, str]:
    tables = {
        "alerts": empty_table("alerts"),
        "paths": paths_table("run-1", "2024-01-03", {"alice": [(True, False, False, 2.5, -10.0)]}),
    }
    build_run(runs_root, "run-1", tables)
    build_failed_run(runs_root, "run-2")
    bad = build_run(runs_root, "run-3", tables)
    (bad / "truth/paths.parquet").unlink()
    opts = {"runs": str(runs_root), "db": str(db_path), "exports": str(tmp_path / "exports")}
    assert (
        _cli(
            "catalog-sync",
            "--base-dir",
            opts["runs"],
            "--duckdb",
            opts["db"],
            "--exports-dir",
            opts["exports"],
        )
        == 0
    )
    capsys.readouterr()
    return opts


def test_catalog_sync_prints_the_seed_block(synced, capsys):
    code = _cli(
        "catalog-sync",
        "--base-dir",
        synced["runs"],
        "--duckdb",
        synced["db"],
        "--exports-dir",
        synced["exports"],
        "--stats",
    )
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines()[:3] == [
        "✓ Initialized catalog tables",
        "✓ Registered 0 runs",
        "✓ Skipped 2 runs",
    ]
    assert "✗ Rejected 1 run" in out
    assert "2024-01/run_id=run-3: missing_artifact" in out
    assert "Catalog Statistics:\n  Total runs: 2\n  Completed: 1\n  Failed: 1\n" in out
    assert '  By type: { "path-only": 2 }' in out
    assert (Path(synced["exports"]) / "paths.parquet").exists()


def test_catalog_sync_json(synced, capsys, runs_root):
    build_run(runs_root, "run-4", {"alerts": empty_table("alerts")})
    code = _cli(
        "catalog-sync",
        "--base-dir",
        synced["runs"],
        "--duckdb",
        synced["db"],
        "--exports-dir",
        synced["exports"],
        "--json",
    )
    payload = json.loads(capsys.readouterr().out)
    assert code == 0
    assert payload["registered"] == ["run-4"] and payload["skipped"] == 2
    assert payload["rejected"][0]["reason"].startswith("missing_artifact")
    assert payload["stats"]["total_runs"] == 3
    assert payload["exports"]["files"]["paths"]["rows"] == 1


def test_catalog_query_filters_and_json(synced, capsys):
    assert _cli("catalog-query", "--duckdb", synced["db"], "--status", "failed", "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["run_id"] for r in rows] == ["run-2"]
    assert _cli("catalog-query", "--duckdb", synced["db"], "--from-date", "2024-01-06") == 0
    assert capsys.readouterr().out.strip() == "(none)"
    assert (
        _cli("catalog-query", "--duckdb", synced["db"], "--to-date", "2024-01-05", "--limit", "1")
        == 0
    )
    assert len(capsys.readouterr().out.strip().splitlines()) == 2  # header + one run


def test_catalog_query_rejected(synced, capsys):
    assert _cli("catalog-query", "--duckdb", synced["db"], "--rejected", "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["run_id"], r["reason"]) for r in rows] == [("run-3", "missing_artifact")]


def test_catalog_query_artifact_path(synced, capsys):
    code = _cli(
        "catalog-query", "--duckdb", synced["db"], "--run-id", "run-1", "--artifact-type", "paths"
    )
    out = capsys.readouterr().out.strip()
    assert code == 0
    assert out == str(Path(synced["runs"]) / "2024-01" / "run_id=run-1" / "truth" / "paths.parquet")
    code = _cli(
        "catalog-query", "--duckdb", synced["db"], "--run-id", "run-1", "--artifact-type", "trades"
    )
    assert code == 1
    assert "no 'trades' artifact" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--run-type", "weird"],
            "unknown run type 'weird' (expected one of: path-only, policy, optimization)",
        ),
        (["--status", "running"], "unknown status 'running' (expected one of: completed, failed)"),
        (["--from-date", "yesterday"], "from date 'yesterday' is not a date (YYYY-MM-DD)"),
        (["--run-id", "x"], "--run-id and --artifact-type go together"),
        (["--run-id", "x", "--artifact-type", "nope"], "unknown artifact type 'nope'"),
        (["--limit", "0"], "limit must be at least 1, got 0"),
    ],
)
def test_catalog_query_bad_filters_are_one_line_errors(synced, capsys, argv, message):
    assert _cli("catalog-query", "--duckdb", synced["db"], *argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}")
    assert err.count("\n") == 1


def test_missing_catalog_and_runs_dir_are_clear_errors(tmp_path, capsys):
    assert _cli("catalog-query", "--duckdb", str(tmp_path / "none.duckdb")) == 2
    assert "no catalog at" in capsys.readouterr().err
    assert _cli("list", "--base-dir", str(tmp_path / "none")) == 2
    assert "does not exist" in capsys.readouterr().err


def test_list_reads_manifests_including_unfinished_and_broken(runs_root, capsys):
    build_run(runs_root, "done", {"alerts": empty_table("alerts")})
    build_run(runs_root, "going", {}, status="running", marker=None)
    broken = build_run(runs_root, "broken", {})
    (broken / "run.json").write_text("{")
    assert _cli("list", "--base-dir", str(runs_root), "--json") == 0
    rows = {r["run_dir"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["2024-01/run_id=done"]["status"] == "completed"
    assert rows["2024-01/run_id=done"]["marker"] == "_SUCCESS"
    assert rows["2024-01/run_id=going"]["marker"] == "-"
    assert rows["2024-01/run_id=broken"]["status"] == "unreadable"
    assert rows["2024-01/run_id=broken"]["error"]
    assert _cli("list", "--base-dir", str(runs_root)) == 0
    assert "run_id" in capsys.readouterr().out


def test_list_and_catalog_query_find_runs_of_the_same_config_and_data(
    tmp_path, runs_root, db_path, capsys
):
    tables = {"alerts": empty_table("alerts")}
    day = datetime(2024, 1, 5, 12, 0, tzinfo=UTC)
    build_run(runs_root, "first", tables, created=day, data_fingerprint="fp1")
    build_run(runs_root, "again", tables, created=day + timedelta(hours=1), data_fingerprint="fp1")
    build_run(runs_root, "newdata", tables, created=day, data_fingerprint="fp2")
    build_run(runs_root, "newcfg", tables, created=day, config_hash="c2", data_fingerprint="fp1")
    build_run(runs_root, "old", tables, created=day)  # run.json before data fingerprints

    assert _cli("list", "--base-dir", str(runs_root), "--same-as", "first", "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["run_id"] for r in rows] == ["again", "first"]
    assert {(r["config_hash"], r["data_fingerprint"]) for r in rows} == {("cfg", "fp1")}
    assert _cli("list", "--base-dir", str(runs_root)) == 0
    assert "data_fingerprint" in capsys.readouterr().out  # shown in the plain listing too

    for bad in ("nosuchrun", "old"):
        assert _cli("list", "--base-dir", str(runs_root), "--same-as", bad) == 2
        err = capsys.readouterr().err
        assert err.startswith("error:") and err.count("\n") == 1

    sync = ["--base-dir", str(runs_root), "--duckdb", str(db_path)]
    assert _cli("catalog-sync", *sync, "--exports-dir", str(tmp_path / "exports")) == 0
    capsys.readouterr()
    assert _cli("catalog-query", "--duckdb", str(db_path), "--same-as", "first", "--json") == 0
    found = json.loads(capsys.readouterr().out)
    assert sorted(r["run_id"] for r in found) == ["again", "first"]
    assert {r["data_fingerprint"] for r in found} == {"fp1"}
    assert _cli("catalog-query", "--duckdb", str(db_path), "--same-as", "nosuchrun") == 0
    assert capsys.readouterr().out.strip() == "(none)"
