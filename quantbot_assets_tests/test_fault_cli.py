"""The CLI fault-injection runner (bench/fault_cli.py) in its small version: all green."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "fault_cli.py"


@pytest.mark.slow
def test_fault_injection_through_the_cli_finds_nothing_wrong() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--seed", "3"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert "clear errors | tracebacks | stuck runs" in done.stdout, done.stderr[-3000:]
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    total = next(line for line in done.stdout.splitlines() if line.startswith("total"))
    trials, clear, *bad = (int(x) for x in total.split("|")[1:])
    assert trials >= 20 and clear > 0 and bad == [0, 0, 0, 0, 0]
