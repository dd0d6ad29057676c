"""`quantbot dev`: the Dagster web UI and daemon, bound to 127.0.0.1, stopped cleanly."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import sys
from types import FrameType

from quantbot_assets.dev_daemon import MODULE
from quantbot_assets.errors import UsageError
from quantbot_assets.settings import Settings

WORKSPACE_FILE = "workspace.yaml"


class PortTaken(UsageError, OSError):
    """The web UI's port cannot be bound (one line)."""


def check_port(host: str, port: int) -> None:
    """Raise PortTaken when `host:port` cannot be listened on (taken, or not allowed)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise PortTaken(f"--host {host}: {exc.strerror}") from None
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        # The same option uvicorn sets: a port left in TIME_WAIT is free to use.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortTaken(
                    f"port {port} on {host} is already in use (another `quantbot dev`?); "
                    "stop it or choose another with --port"
                ) from None
            raise PortTaken(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def dev_command(settings: Settings, host: str, port: int) -> list[str]:
    workspace = settings.project_dir / WORKSPACE_FILE
    target = ["-w", str(workspace)] if workspace.exists() else ["-m", "quantbot_assets.definitions"]
    # Dagster's `dev`, with the backfill daemon's pickup interval shortened (dev_daemon.py).
    return [sys.executable, "-m", MODULE, "dev", "-h", host, "-p", str(port), *target]


def run_dev(settings: Settings, host: str = "127.0.0.1", port: int = 3000) -> int:
    """Run `dagster dev` in its own process group; Ctrl-C or SIGTERM stops the whole group.

    A port that is taken is refused at once (PortTaken) rather than leaving a
    daemon running without a web UI.
    """
    check_port(host, port)
    env = dict(os.environ)
    env.setdefault("DAGSTER_HOME", str(settings.dagster_home))
    # The code location reads these once when it loads (see settings.py).
    env.setdefault("QUANTBOT_PROJECT_DIR", str(settings.project_dir))
    env.setdefault("QUANTBOT_RUNS_DIR", str(settings.runs_dir))
    env.setdefault("QUANTBOT_CALLS", str(settings.calls_path))
    env.setdefault("QUANTBOT_CANDLES", str(settings.candles_path))
    env.setdefault("QUANTBOT_FIRST_DAY", settings.first_day)
    print(
        f"Dagster UI on http://{host}:{port} (DAGSTER_HOME={env['DAGSTER_HOME']}); Ctrl-C stops it"
    )
    started: list[subprocess.Popen[bytes]] = []

    def stop(signum: int, _frame: FrameType | None) -> None:
        if not started:
            raise KeyboardInterrupt
        with contextlib.suppress(ProcessLookupError):
            os.killpg(started[0].pid, signal.SIGTERM)

    # Handlers first: a signal ignored here stays ignored in the child (a shell without
    # job control starts `quantbot dev &` with SIGINT ignored), and `dagster dev` maps
    # SIGTERM onto its SIGINT handler, so it would then ignore both. Handled signals
    # are reset to their defaults in the child.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    process = subprocess.Popen(
        dev_command(settings, host, port), cwd=settings.project_dir, env=env, start_new_session=True
    )
    started.append(process)
    try:
        return_code = process.wait()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    return 0 if return_code in (0, -signal.SIGTERM, 128 + signal.SIGTERM) else return_code
