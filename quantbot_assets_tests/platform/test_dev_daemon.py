"""`quantbot dev` starts Dagster's daemon with a short backfill pickup interval."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
from dagster._daemon import controller
from dagster._daemon.backfill import execute_backfill_iteration_loop

from quantbot_assets.dev_daemon import (
    BACKFILL_INTERVAL_SECONDS,
    MODULE,
    daemon_command,
    shorten_backfill_interval,
)
from quantbot_assets.dev_server import dev_command
from quantbot_assets.settings import Settings


class _Waits(threading.Event):
    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(float(timeout or 0.0))
        return True


class _NoWorkspace:
    @property
    def instance(self) -> Any:
        raise RuntimeError("no instance here: the loop logs it and sleeps")


def _first_sleep() -> float:
    waits = _Waits()
    loop = execute_backfill_iteration_loop(_NoWorkspace(), logging.getLogger("t"), waits)  # type: ignore[arg-type]
    for _ in loop:
        if waits.waits:
            break
    return waits.waits[0]


def test_the_backfill_loop_sleeps_the_short_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(controller, "DEFAULT_DAEMON_INTERVAL_SECONDS", 30)
    assert _first_sleep() > 25  # Dagster's own pace
    shorten_backfill_interval()
    assert 0 < _first_sleep() <= BACKFILL_INTERVAL_SECONDS


def test_dagster_dev_starts_our_daemon_and_its_own_webserver(tmp_path: Any) -> None:
    daemon = ["/py", "-m", "dagster._daemon", "run", "--log-level", "info"]
    assert daemon_command(daemon) == ["/py", "-m", MODULE, "daemon", "run", "--log-level", "info"]
    webserver = ["/py", "-m", "dagster_webserver", "--port", "3000"]
    assert daemon_command(webserver) == webserver
    command = dev_command(
        Settings.from_env({"QUANTBOT_PROJECT_DIR": str(tmp_path)}), "127.0.0.1", 1
    )
    assert command[1:4] == ["-m", MODULE, "dev"]
