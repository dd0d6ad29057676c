"""The fault-injection suite in its small size (CI), and the runner's verdict."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from quantbot_assets_tests.faults import GROUP_MODULES
from quantbot_assets_tests.faults.catalog_faults import CRAFTED
from quantbot_assets_tests.faults.harness import (
    Context,
    FaultGroup,
    Trial,
    failures,
    format_table,
    load_groups,
    main,
    run_suite,
)


@pytest.mark.slow
def test_the_smoke_suite_finds_no_traceback_stuck_run_wrong_completion_loss_or_escape(
    tmp_path: Path,
) -> None:
    groups = load_groups(GROUP_MODULES)
    rows = run_suite(groups, mode="smoke", seed=7, work=tmp_path)
    table = format_table(rows)
    print(table)
    assert not failures(rows), (
        table + "\n" + "\n".join(note for row in failures(rows) for note in row.notes)
    )
    names = {row.name for row in rows}
    assert set(CRAFTED) <= names and len(CRAFTED) >= 15
    crafted = [row for row in rows if row.name in CRAFTED]
    assert all(row.counts["clear_error"] == row.trials for row in crafted), table
    assert any("SIGKILL" in name for name in names)
    assert any("concurrent writers" in name for name in names)
    assert any("catalog-query while" in name for name in names)


def _broken(ctx: Context, trials: int) -> Iterator[tuple[str, Trial]]:
    yield "fine", Trial(clear_error=True)
    yield "leaks", Trial(escape=True, notes=["read /etc/passwd"])


def test_the_runner_fails_on_any_bad_column(tmp_path: Path, capsys) -> None:
    group = FaultGroup("demo", {"smoke": 1, "default": 1, "full": 1}, _broken)
    rows = run_suite([group], mode="smoke", seed=1, work=tmp_path)
    assert [row.name for row in failures(rows)] == ["leaks"]
    table = format_table(rows)
    header = table.splitlines()[0]
    for column in (
        "class",
        "trials",
        "clear errors",
        "tracebacks",
        "stuck runs",
        "wrongly complete",
        "data lost",
        "escapes",
    ):
        assert column in header


def test_the_runner_exit_code(tmp_path: Path, monkeypatch, capsys) -> None:
    from quantbot_assets_tests.faults import harness

    monkeypatch.setattr(
        harness, "GROUPS", [FaultGroup("demo", {"smoke": 1, "default": 1, "full": 1}, _broken)]
    )
    assert main(["--smoke", "--work-dir", str(tmp_path)], modules=[]) == 1
    out = capsys.readouterr().out
    assert "leaks: read /etc/passwd" in out and "FAILED" in out
