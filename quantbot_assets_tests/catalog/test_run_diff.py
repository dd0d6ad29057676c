"""`quantbot backtest diff` / `run_diff.diff_runs` on two hand-made run directories whose
differences are known: parameters, dataset, code, data fingerprint, trades that changed exit
reason, exit time or return, calls on one side only, summary deltas; and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from quantbot_assets.cli import main
from quantbot_assets.run_diff import RunDiffError, diff_runs
from quantbot_assets.rundir import MANIFEST_FILE, read_manifest, write_manifest
from quantbot_assets.schemas import ARTIFACT_SCHEMAS
from quantbot_assets_tests.catalog.runbuilder import build_run, trades_table


def _cli(*argv: str) -> int:
    """`quantbot backtest ARGV...` in this process: its exit code (stdout, stderr captured)."""
    return main(["backtest", *argv])


def _summary(run_id: str, rows: list[tuple[str, int, float]]) -> pa.Table:
    """summary rows (policy_id, trades_count, median_return_bps), other metrics null."""
    frame = pd.DataFrame(
        {name: [None] * len(rows) for name in ARTIFACT_SCHEMAS["summary"].names}
    ).astype(object)
    frame["run_id"] = run_id
    frame["day"] = "2024-01-03"
    frame["policy_id"] = [r[0] for r in rows]
    frame["trades_count"] = [r[1] for r in rows]
    frame["calls_processed"] = [r[1] for r in rows]
    frame["calls_excluded"] = 0
    frame["median_return_bps"] = [r[2] for r in rows]
    return pa.Table.from_pandas(frame, ARTIFACT_SCHEMAS["summary"], preserve_index=False)


@pytest.fixture
def two_runs(runs_root: Path) -> tuple[Path, Path]:
    # A: trades p-0 (+100), p-1 (-500 stop), p-2 (+300). B: p-0 same, p-1 exits later with
    # another reason and return, p-2 gone, p-3 new.
    a = trades_table("A", "p", [(100.0, False, None), (-500.0, True, None), (300.0, False, None)])
    b = trades_table("B", "p", [(100.0, False, None), (-200.0, False, None)]).to_pandas()
    b.loc[1, "exit_ts_ms"] = 5_000
    b.loc[1, "exit_reason"] = "end_of_window"
    extra = trades_table("B", "p", [(0, False, None)] * 4).to_pandas().iloc[[3]]
    b = pd.concat([b, extra], ignore_index=True)
    b_table = pa.Table.from_pandas(b, ARTIFACT_SCHEMAS["trades"], preserve_index=False)
    dir_a = build_run(
        runs_root,
        "A",
        {"trades": a, "summary": _summary("A", [("p", 3, 100.0)])},
        run_type="policy",
        partition_key="2024-01-03|p",
        parameters={"interval": "1m", "fee_bps": 0},
        data_fingerprint="fp1",
    )
    dir_b = build_run(
        runs_root,
        "B",
        {"trades": b_table, "summary": _summary("B", [("p", 3, 50.0)])},
        run_type="policy",
        partition_key="2024-01-03|p",
        parameters={"interval": "1m", "fee_bps": 10},
        config_hash="cfg2",
        data_fingerprint="fp1",
    )
    manifest = read_manifest(dir_b)
    manifest.git_commit = "def456"
    manifest.dataset.to = "2024-01-05"
    write_manifest(dir_b, manifest)
    return dir_a, dir_b


def test_diff_names_every_known_difference(two_runs, runs_root):
    diff = diff_runs("A", two_runs[1], runs_root)  # a run id and a path
    assert diff["a"]["run_id"] == "A" and diff["b"]["run_id"] == "B"
    assert diff["parameters"] == {"fee_bps": {"a": 0, "b": 10, "delta": 10}}
    assert diff["dataset"] == {"to": {"a": "2024-01-04", "b": "2024-01-05"}}
    assert diff["code"] == {"git_commit": {"a": "abc123", "b": "def456"}}
    assert diff["config_hash"] == {"config_hash": {"a": "cfg", "b": "cfg2"}}
    assert diff["data"] == {}  # same data fingerprint
    trades = diff["trades"]
    assert trades["compared"] == 2
    assert trades["changed"] == [
        {
            "policy_id": "p",
            "call_id": "p-1",
            "changes": {
                "exit_reason": {"a": "stop_loss", "b": "end_of_window"},
                "exit_ts_ms": {"a": 2_000, "b": 5_000, "delta": 3_000},
                "realized_return_bps": {"a": -500.0, "b": -200.0, "delta": 300.0},
            },
        }
    ]
    assert trades["only_in_a"] == [{"policy_id": "p", "call_id": "p-2"}]
    assert trades["only_in_b"] == [{"policy_id": "p", "call_id": "p-3"}]
    assert diff["calls"] == {"only_in_a": ["p-2"], "only_in_b": ["p-3"]}
    summary = diff["summary"]
    assert summary["changed"] == [
        {
            "policy_id": "p",
            "day": "2024-01-03",
            "changes": {"median_return_bps": {"a": 100.0, "b": 50.0, "delta": -50.0}},
        }
    ]
    assert diff_runs("A", "A", runs_root)["trades"]["changed"] == []


def test_diff_command_text_and_json(two_runs, runs_root, capsys):
    assert _cli("diff", "A", "B", "--base-dir", str(runs_root), "--json") == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["trades"]["changed"][0]["call_id"] == "p-1"
    assert _cli("diff", str(two_runs[0]), str(two_runs[1])) == 0
    text = capsys.readouterr().out
    assert "fee_bps: 0 -> 10" in text
    assert "p p-1: exit_reason stop_loss -> end_of_window" in text
    assert "realized_return_bps -500 -> -200 (+300)" in text


def test_bad_input_is_one_line_and_exit_code_2(two_runs, runs_root, tmp_path, capsys):
    not_a_run = tmp_path / "empty"
    not_a_run.mkdir()
    broken = build_run(runs_root, "broken", {})
    (broken / MANIFEST_FILE).write_text("{not json")
    for ref in ("nosuchrun", str(not_a_run), "broken", "../etc"):
        assert _cli("diff", "A", ref, "--base-dir", str(runs_root)) == 2, ref
        err = capsys.readouterr().err
        assert err.startswith("error:") and err.count("\n") == 1, err
    with pytest.raises(RunDiffError, match="no run"):
        diff_runs("A", "nosuchrun", runs_root)
