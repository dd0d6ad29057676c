"""The `quantbot` command: clear one-line errors with exit code 2, and a real policy backtest."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from quantbot_assets.cli import main
from quantbot_assets.settings import Settings
from quantbot_assets_tests.platform.tiny_data import TinyData


@pytest.fixture
def project_env(tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("QUANTBOT_PROJECT_DIR", str(tmp_path))
    monkeypatch.setenv("QUANTBOT_POLICY_REGISTRY", str(settings.policy_registry))
    return tmp_path


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--from", "2024-13-01", "--to", "2024-01-02"], "--from '2024-13-01' is not a date"),
        (["--from", "2024-01-05", "--to", "2024-01-02"], "empty range"),
        (["--from", "2024-01-01", "--to", "2024-01-02", "--interval", "7m"], "--interval '7m'"),
        (["--from", "2024-01-01", "--to", "2024-01-02", "--horizon", "soon"], "--horizon 'soon'"),
        (
            ["--from", "2024-01-01", "--to", "2024-01-02", "--calls-from-csv", "/nope/calls.csv"],
            "calls file /nope/calls.csv does not exist",
        ),
        (
            [
                "--from",
                "2024-01-01",
                "--to",
                "2024-01-02",
                "--policy",
                '{"kind":"fixed_stop","stop_los_bps":5}',
            ],
            "stop_los_bps",
        ),
    ],
)
def test_policy_command_errors_are_one_line_and_exit_2(
    project_env: Path,
    tiny: TinyData,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    calls = [] if "--calls-from-csv" in argv else ["--calls-from-parquet", str(tiny.calls)]
    code = main(
        ["backtest", "policy", "--policy-id", "p1", *calls, "--candles", str(tiny.candles), *argv]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err and len(err.splitlines()) == 1


def test_policy_command_refuses_a_new_definition_under_an_existing_id(
    project_env: Path, tiny: TinyData, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "backtest",
            "policy",
            "--policy-id",
            "fixed-stop-5pct",
            "--policy",
            '{"kind":"fixed_stop","stop_loss_bps":400}',
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-01",
            "--calls-from-parquet",
            str(tiny.calls),
        ]
    )
    assert code == 2
    assert "already names a different policy" in capsys.readouterr().err


def test_a_call_source_without_the_needed_columns_is_a_clear_error(
    project_env: Path, tiny: TinyData, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "calls.csv"
    bad.write_text("call_id,mint\nc1,M1\n")
    code = main(
        [
            "backtest",
            "path-only",
            "--calls-from-csv",
            str(bad),
            "--candles",
            str(tiny.candles),
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-01",
            "--json",
        ]
    )
    # Found before any run (issue 10): one line, exit 2, no run directory.
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    err = captured.err.strip()
    assert len(err.splitlines()) == 1
    assert "calls.csv" in err and "caller_name" in err
    assert not list((tmp_path / "runs").glob("*/run_id=*"))


def test_policy_command_runs_and_registers_a_new_policy(
    project_env: Path, tiny: TinyData, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "backtest",
            "policy",
            "--policy-id",
            "sl-10",
            "--policy",
            '{"kind":"fixed_stop","stop_loss_bps":1000}',
            "--calls-from-parquet",
            str(tiny.calls),
            "--candles",
            str(tiny.candles),
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-02",
            "--horizon",
            "3h",
            "--json",
        ]
    )
    result = json.loads(capsys.readouterr().out)
    assert code == 0, result
    assert result["policy_id"] == "sl-10"
    # One request, one run: it computed the missing truth layer of both days too.
    [run] = result["runs"]
    assert run["success"] and run["partition"] == "2024-01-01|sl-10..2024-01-02|sl-10"
    run_dir = Path(run["run_dir"])
    assert (run_dir / "_SUCCESS").exists() and (run_dir / "truth/paths.parquet").exists()
    summary = result["summary"][0]
    assert summary["calls_processed"] == summary["calls_excluded"] + summary["trades_count"]
    assert "sl-10" in settings.policy_registry.read_text()
    # Again: the truth layer is reused, only the policy runs again.
    assert (
        main(
            [
                "backtest",
                "policy",
                "--policy-id",
                "sl-10",
                "--calls-from-parquet",
                str(tiny.calls),
                "--candles",
                str(tiny.candles),
                "--from",
                "2024-01-01",
                "--to",
                "2024-01-02",
                "--horizon",
                "3h",
                "--json",
            ]
        )
        == 0
    )
    [again] = json.loads(capsys.readouterr().out)["runs"]
    assert not (Path(again["run_dir"]) / "truth/paths.parquet").exists()
    assert os.environ["DAGSTER_HOME"].endswith("dagster_home")


def _walk_forward_argv(tiny: TinyData, grid: Path, *extra: str) -> list[str]:
    return [
        "backtest",
        "walk-forward",
        "--calls-from-parquet",
        str(tiny.calls),
        "--candles",
        str(tiny.candles),
        "--horizon",
        "3h",
        "--grid",
        str(grid),
        "--train-days",
        "1",
        "--test-days",
        "1",
        "--step-days",
        "1",
        "--min-trades",
        "2",
        "--baseline",
        "sl10",
        *extra,
    ]


def test_walk_forward_command(
    project_env: Path, tiny: TinyData, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grid = tmp_path / "grid.json"
    grid.write_text(
        json.dumps(
            {
                "sl10": {"kind": "fixed_stop", "stop_loss_bps": 1000},
                "sl10-tp20": {"kind": "fixed_stop", "stop_loss_bps": 1000, "take_profit_bps": 2000},
            }
        )
    )
    argv = _walk_forward_argv(tiny, grid, "--from", "2024-01-01", "--to", "2024-01-03")
    assert main([*argv, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    [run] = result["runs"]
    assert run["success"] and run["partition"] == "2024-01"
    pooled = {row["caller_name"]: row for row in result["pooled"]}
    assert set(pooled) == {"__all__", "alice", "bob"}
    assert pooled["__all__"]["oos_trades"] == 5 and pooled["__all__"]["folds"] == 2
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Walk-forward 2024-01-01 .. 2024-01-03: 2 folds" in out
    assert "Holds up out of sample" in out and "Does not hold up" in out
    # Mistakes are one line and exit 2, before any run.
    for bad, message in (
        (["--to", "2024-01-01"], "hold no fold"),
        (["--to", "2024-01-03", "--baseline", "nope"], "--baseline 'nope'"),
        (["--to", "2024-01-03", "--step-days", "0"], "step_days"),
    ):
        argv = _walk_forward_argv(tiny, grid, "--from", "2024-01-01", *bad)
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
