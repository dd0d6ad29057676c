"""`dagster dev` whose daemon looks for new backfills every few seconds instead of every 30.

A backfill launched from the web UI is only a request until Dagster's backfill daemon
picks it up and submits its runs. In Dagster 1.13 that daemon's loop sleeps
`dagster._daemon.controller.DEFAULT_DAEMON_INTERVAL_SECONDS` (30 s) between passes, a
module constant with no instance setting, so a month's backfill that runs in 20 s waited
up to 30 s more before it began. `quantbot dev` runs Dagster's own `dev` command through
`main` below, which starts Dagster's own daemon through `run_daemon` with that one
constant lowered to BACKFILL_INTERVAL_SECONDS; everything else is Dagster's. Both touch
a private name of Dagster's (the constant, and the function `dagster dev` starts its
subprocesses with), each in one place here: if a Dagster upgrade renames either,
`quantbot dev` fails at start with an error naming it, never silently.

    python -m quantbot_assets.dev_daemon dev [dagster dev options]
    python -m quantbot_assets.dev_daemon daemon run [dagster-daemon run options]
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

BACKFILL_INTERVAL_SECONDS = 3
DAEMON_MODULE = "dagster._daemon"
MODULE = "quantbot_assets.dev_daemon"


def shorten_backfill_interval(seconds: int = BACKFILL_INTERVAL_SECONDS) -> None:
    """Make the backfill daemon's loop (which reads the constant when it starts) sleep `seconds`."""
    from dagster._daemon import controller

    if not isinstance(getattr(controller, "DEFAULT_DAEMON_INTERVAL_SECONDS", None), int):
        raise RuntimeError(
            "dagster._daemon.controller.DEFAULT_DAEMON_INTERVAL_SECONDS is gone in this "
            "Dagster version: update quantbot_assets/dev_daemon.py"
        )
    controller.DEFAULT_DAEMON_INTERVAL_SECONDS = seconds  # type: ignore[misc]


def daemon_command(command: Sequence[str]) -> list[str]:
    """`[python, -m, dagster._daemon, ...]` as `[python, -m, quantbot_assets.dev_daemon, daemon, ...]`."""
    parts = list(command)
    if parts[1:3] == ["-m", DAEMON_MODULE]:
        return [parts[0], "-m", MODULE, "daemon", *parts[3:]]
    return parts


def run_daemon(argv: Sequence[str]) -> None:
    shorten_backfill_interval()
    from dagster._daemon.cli import cli as daemon_cli

    daemon_cli(args=list(argv), prog_name="dagster-daemon", obj={})


def run_dagster_dev(argv: Sequence[str]) -> None:
    from dagster._cli import ENV_PREFIX
    from dagster._cli import cli as dagster_cli
    from dagster._cli import dev as dagster_dev

    launch = getattr(dagster_dev, "open_ipc_subprocess", None)
    if launch is None:
        raise RuntimeError(
            "dagster._cli.dev.open_ipc_subprocess is gone in this Dagster version: "
            "update quantbot_assets/dev_daemon.py"
        )

    def open_subprocess(command: Sequence[str], **kwargs: Any) -> Any:
        return launch(daemon_command(command), **kwargs)

    dagster_dev.open_ipc_subprocess = open_subprocess  # type: ignore[assignment]
    dagster_cli(args=["dev", *argv], prog_name="dagster", auto_envvar_prefix=ENV_PREFIX)


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["daemon"]:
        run_daemon(args[1:])
    elif args[:1] == ["dev"]:
        run_dagster_dev(args[1:])
    else:
        raise SystemExit("usage: python -m quantbot_assets.dev_daemon {dev|daemon} ...")


if __name__ == "__main__":
    main()
