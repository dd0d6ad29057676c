"""Issue 10: data errors are found before any run (one line, exit 2, no run); runs of dead
processes are marked failed; a command whose runs all fail prints their causes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from quantbot_assets.cli import main
from quantbot_assets.defs.backtest.partitions import day_partitions, month_partitions
from quantbot_assets.resources import CandleSourceResource
from quantbot_assets.run_directories import RunDirectories
from quantbot_assets.settings import Settings, SettingsError
from quantbot_assets.stale_runs import (
    HOST_TAG,
    PID_TAG,
    build_stale_run_sensor,
    process_tags,
)
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


def _deep_combo(depth: int) -> str:
    inner = '{"kind":"fixed_stop","stop_loss_bps":500}'
    return '{"kind":"combo","policies":[' * depth + inner + "]}" * depth


def _bad_inputs(tmp: Path, tiny: TinyData) -> dict[str, tuple[list[str], str]]:
    """name -> (extra argv, text the one-line error must contain)."""
    calls = pd.read_parquet(tiny.calls)
    candles = pd.read_parquet(tiny.candles)
    cases: dict[str, tuple[list[str], str]] = {}

    def calls_csv(name: str, frame: pd.DataFrame | None, text: str | None = None) -> Path:
        path = tmp / f"{name}.csv"
        if frame is not None:
            frame.to_csv(path, index=False)
        else:
            path.write_text(text or "")
        return path

    def candles_pq(name: str, frame: pd.DataFrame) -> Path:
        path = tmp / f"{name}.parquet"
        frame.to_parquet(path, index=False)
        return path

    p = calls_csv("no_caller", calls.drop(columns="caller_name"))
    cases["calls missing column"] = (["--calls-from-csv", str(p)], "'caller_name'")
    p = calls_csv("str_ts", calls.assign(alert_ts_ms="yesterday"))
    cases["calls wrong type"] = (["--calls-from-csv", str(p)], "'alert_ts_ms' has type")
    p = calls_csv("seconds", calls.assign(alert_ts_ms=calls["alert_ts_ms"] // 1000))
    cases["calls in seconds"] = (["--calls-from-csv", str(p)], "look like seconds")
    p = calls_csv("empty", None, "")
    cases["calls empty csv"] = (["--calls-from-csv", str(p)], "empty")
    p = calls_csv("header_only", None, "call_id,mint,caller_name,chain,alert_ts_ms\n")
    cases["calls header only"] = (["--calls-from-csv", str(p)], "no rows")
    corrupt = tmp / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1 this is not parquet")
    cases["calls corrupt parquet"] = (["--calls-from-parquet", str(corrupt)], "corrupt.parquet")
    folder = tmp / "a_folder"
    folder.mkdir()
    cases["calls directory"] = (["--calls-from-csv", str(folder)], "a_folder")
    p = candles_pq("no_close", candles.drop(columns="close"))
    cases["candles missing column"] = (["--candles", str(p)], "'close'")
    p = candles_pq("ms_float", candles.assign(ts_ms=candles["ts_ms"].astype(str)))
    cases["candles wrong type"] = (["--candles", str(p)], "'ts_ms' has type")
    p = candles_pq("candle_seconds", candles.assign(ts_ms=candles["ts_ms"] // 1000))
    cases["candles in seconds"] = (["--candles", str(p)], "look like seconds")
    empty = tmp / "empty.parquet"
    empty.write_bytes(b"")
    cases["candles empty file"] = (["--candles", str(empty)], "empty.parquet")
    cases["fee nan"] = (["--fee-bps", "nan"], "--fee-bps nan")
    cases["slippage inf"] = (["--slippage-bps", "inf"], "--slippage-bps inf")
    cases["before first day"] = (["--from", "2023-12-31"], "QUANTBOT_FIRST_DAY")
    cases["after today"] = (["--to", "2999-01-01"], "last complete UTC day")
    return cases


def test_every_data_error_is_one_line_exit_2_and_no_run(
    project_env: Path, tiny: TinyData, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    failures = []
    for name, (extra, message) in _bad_inputs(bad, tiny).items():
        argv = ["--calls-from-parquet", str(tiny.calls), "--candles", str(tiny.candles)]
        argv += ["--from", "2024-01-01", "--to", "2024-01-02", "--horizon", "3h"]
        # A later option wins in argparse; a second --calls-* option is refused, so swap.
        if any(a.startswith("--calls-from") for a in extra):
            argv = argv[2:]
        code = main(["backtest", "path-only", *argv, *extra])
        err = capsys.readouterr().err.strip()
        if code != 2 or len(err.splitlines()) != 1 or message not in err:
            failures.append((name, code, err))
    assert not failures, failures
    assert not (tmp_path / "runs").exists()
    with dg.DagsterInstance.get() as instance:
        assert instance.get_runs_count() == 0


def test_a_combo_nested_too_deep_is_refused_naming_the_field(
    project_env: Path, tiny: TinyData, capsys: pytest.CaptureFixture[str]
) -> None:
    for depth, text in ((3000, "nested too deep"), (20, "combos nested more than 8 deep")):
        code = main(
            [
                "backtest",
                "policy",
                "--policy-id",
                f"deep-{depth}",
                "--policy",
                _deep_combo(depth),
                "--calls-from-parquet",
                str(tiny.calls),
                "--candles",
                str(tiny.candles),
                "--from",
                "2024-01-01",
                "--to",
                "2024-01-01",
            ]
        )
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and text in err, err


def test_candles_without_an_interval_column_are_taken_as_1m(
    project_env: Path, tiny: TinyData, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    no_interval = tmp_path / "no_interval.parquet"
    pd.read_parquet(tiny.candles).drop(columns="interval").to_parquet(no_interval)
    argv = ["backtest", "path-only", "--calls-from-parquet", str(tiny.calls), "--horizon", "3h"]
    argv += ["--from", "2024-01-01", "--to", "2024-01-01", "--json", "--interval", "5m"]
    assert main([*argv, "--candles", str(tiny.candles)]) == 0
    with_column = json.loads(capsys.readouterr().out)
    assert main([*argv, "--candles", str(no_interval)]) == 0
    captured = capsys.readouterr()
    without = json.loads(captured.out)
    assert "no 'interval' column; its bars are taken as 1m bars" in captured.err
    assert without["calls_entered"] == with_column["calls_entered"] > 0
    assert without["callers"] == with_column["callers"]


def test_when_every_run_fails_the_command_prints_each_cause_and_exits_1(
    project_env: Path,
    tiny: TinyData,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(self: CandleSourceResource, *args: object) -> pd.DataFrame:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(CandleSourceResource, "load", broken)
    code = main(
        [
            "backtest",
            "policy",
            "--policy-id",
            "fixed-stop-5pct",
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
        ]
    )
    captured = capsys.readouterr()
    assert code == 1
    assert "Traceback" not in captured.err and "Traceback" not in captured.out
    [line] = [x for x in captured.err.splitlines() if x.startswith("FAILED")]
    assert "No space left on device" in line
    run_dir = Path(line.rsplit("(", 1)[1].rstrip(")"))
    assert (run_dir / "_FAILED").exists() and not (run_dir / "_SUCCESS").exists()


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_run_sensor_fails_runs_of_dead_processes_only(tmp_path: Path) -> None:
    run_dirs = RunDirectories(runs_dir=str(tmp_path / "runs"), project_dir=str(tmp_path))
    host = socket.gethostname()
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:

        def started(tags: dict[str, str]) -> str:
            run = instance.create_run_for_job(
                dg.Definitions(
                    jobs=[dg.JobDefinition(name="j", graph_def=dg.GraphDefinition("g"))]
                ).resolve_job_def("j"),
                tags=tags,
            )
            instance.handle_run_event(
                run.run_id,
                dg.DagsterEvent(event_type_value="PIPELINE_START", job_name=run.job_name),
            )
            return run.run_id

        dead = started({PID_TAG: str(_dead_pid()), HOST_TAG: host})
        alive = started(process_tags())
        elsewhere = started({PID_TAG: str(_dead_pid()), HOST_TAG: host + "-other"})
        untagged = started({})
        dead_dir = run_dirs.run_dir(instance, dead)
        dead_dir.mkdir(parents=True)
        sensor = build_stale_run_sensor(run_dirs)
        result = sensor(dg.build_sensor_context(instance=instance))
        assert isinstance(result, dg.SkipReason) and dead in (result.skip_message or "")
        status = {r: instance.get_run_by_id(r).status for r in (dead, alive, elsewhere, untagged)}  # type: ignore[union-attr]
        assert status[dead] == dg.DagsterRunStatus.FAILURE
        assert {status[alive], status[elsewhere], status[untagged]} == {dg.DagsterRunStatus.STARTED}
        assert (dead_dir / "_FAILED").exists()
        assert json.loads((dead_dir / "run.json").read_text())["status"] == "failed"
        # A second tick finds nothing left to do.
        again = sensor(dg.build_sensor_context(instance=instance))
        assert "no run of a dead process" in (again.skip_message or "")  # type: ignore[union-attr]


def test_dev_refuses_a_taken_port_at_once(
    project_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["dev", "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"port {port} on 127.0.0.1 is already in use" in err


def test_first_day_is_a_setting() -> None:
    assert Settings.from_env({}).first_day == "2024-01-01"
    first = Settings.from_env({"QUANTBOT_FIRST_DAY": "2017-08-17"}).first_day
    assert day_partitions(first).get_first_partition_key() == "2017-08-17"
    assert month_partitions(first).get_first_partition_key() == "2017-08"
    with pytest.raises(SettingsError, match="QUANTBOT_FIRST_DAY '2017-13-01'"):
        Settings.from_env({"QUANTBOT_FIRST_DAY": "2017-13-01"})


def test_2017_data_goes_through_with_an_earlier_first_day(tmp_path: Path, tiny: TinyData) -> None:
    shift = (pd.Timestamp("2024-01-01") - pd.Timestamp("2017-01-01")) // pd.Timedelta(1, "ms")
    calls = pd.read_parquet(tiny.calls)
    calls["alert_ts_ms"] -= shift
    candles = pd.read_parquet(tiny.candles)
    candles["ts_ms"] -= shift
    calls.to_parquet(tmp_path / "calls2017.parquet")
    candles.to_parquet(tmp_path / "candles2017.parquet")
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "QUANTBOT_PROJECT_DIR": str(tmp_path),
        "QUANTBOT_FIRST_DAY": "2017-01-01",
    }
    argv = [sys.executable, "-m", "quantbot_assets.cli", "backtest", "path-only", "--json"]
    argv += ["--calls-from-parquet", str(tmp_path / "calls2017.parquet")]
    argv += ["--candles", str(tmp_path / "candles2017.parquet"), "--horizon", "3h"]
    argv += ["--from", "2017-01-01", "--to", "2017-01-02"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["calls_entered"] > 0 and result["runs"][0]["success"]
    assert result["catalogued"] == [result["runs"][0]["run_id"]]
