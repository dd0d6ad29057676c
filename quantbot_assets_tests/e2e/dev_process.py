"""`quantbot dev` as a subprocess in a throw-away project: start, wait until served, stop.

The server runs in its own session so that a test can signal it exactly like
a terminal would, and so that cleanup can reach every process it started
(`dagster dev` starts its webserver, daemon and code servers as children).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from quantbot_assets.settings import PACKAGE_DIR

CHECKOUT = PACKAGE_DIR.parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Project:
    """A self-contained project directory: its own instance, runs, catalog and exports."""

    root: Path
    dagster_home: Path
    runs_dir: Path
    catalog: Path
    exports_dir: Path
    policy_registry: Path
    calls: Path
    candles: Path

    @classmethod
    def create(cls, root: Path, calls: Path, candles: Path) -> Project:
        home = root / "dagster_home"
        home.mkdir(parents=True)
        shutil.copy(CHECKOUT / "dagster.yaml", home / "dagster.yaml")
        registry = root / "policies.yaml"
        shutil.copy(CHECKOUT / "policies.yaml", registry)
        return cls(
            root=root,
            dagster_home=home,
            runs_dir=root / "runs",
            catalog=root / "data" / "backtest_catalog.duckdb",
            exports_dir=root / "data" / "exports",
            policy_registry=registry,
            calls=calls,
            candles=candles,
        )

    def env(self) -> dict[str, str]:
        """The environment `quantbot` reads (settings.py): every path inside `root`."""
        return {
            **os.environ,
            "QUANTBOT_PROJECT_DIR": str(self.root),
            "QUANTBOT_DATA_DIR": str(self.root / "data"),
            "QUANTBOT_RUNS_DIR": str(self.runs_dir),
            "QUANTBOT_CATALOG": str(self.catalog),
            "QUANTBOT_EXPORTS_DIR": str(self.exports_dir),
            "QUANTBOT_POLICY_REGISTRY": str(self.policy_registry),
            "QUANTBOT_CALLS": str(self.calls),
            "QUANTBOT_CANDLES": str(self.candles),
            "DAGSTER_HOME": str(self.dagster_home),
        }


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (read from /proc: no extra package needed)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces or parentheses: split after the last ')'.
        fields = stat[stat.rindex(")") + 2 :].split()
        state, ppid = fields[0], int(fields[1])
        if state != "Z":
            children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


class DevServer:
    """`python -m quantbot_assets.cli dev` on a free port of 127.0.0.1, logging to a file.

    Started with SIGINT ignored, like a background job of a shell script.
    """

    def __init__(self, project: Project, port: int | None = None) -> None:
        self.project = project
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = project.root / "dev_server.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "quantbot_assets.cli",
                "dev",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            cwd=project.root,
            env=project.env(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_ignore_sigint,
        )
        self._seen: set[int] = set()

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def fail(self, message: str) -> AssertionError:
        return AssertionError(f"{message}\n--- quantbot dev log (tail) ---\n{self.log_tail()}")

    def wait_until_served(self, timeout_s: float = 120.0) -> None:
        """Until the webserver answers and the code location has loaded."""
        query = "{ workspaceOrError { ... on Workspace { locationEntries { name "
        query += "locationOrLoadError { __typename } } } } }"
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise self.fail(
                    f"quantbot dev exited with {self.process.returncode} while starting"
                )
            try:
                reply = requests.post(f"{self.url}/graphql", json={"query": query}, timeout=10)
                entries = reply.json()["data"]["workspaceOrError"]["locationEntries"]
                kinds = [
                    e["locationOrLoadError"]["__typename"]
                    for e in entries
                    if e["locationOrLoadError"]
                ]
                if kinds and all(k == "RepositoryLocation" for k in kinds):
                    break
                if "PythonError" in kinds:
                    raise self.fail(f"the code location failed to load: {kinds}")
            except (requests.RequestException, KeyError, TypeError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise self.fail(f"quantbot dev did not serve {self.url} within {timeout_s:.0f} s")
            time.sleep(1)
        self._seen |= descendants(self.process.pid)

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM, as a service manager would; the exit code once every child has gone."""
        self._seen |= descendants(self.process.pid)
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise self.fail(f"quantbot dev still running {timeout_s:.0f} s after SIGTERM") from None
        deadline = time.monotonic() + timeout_s
        while left := {
            pid for pid in self._seen if Path(f"/proc/{pid}").exists() and _state(pid) != "Z"
        }:
            if time.monotonic() > deadline:
                raise self.fail(f"processes left after quantbot dev exited: {sorted(left)}")
            time.sleep(0.5)
        return code

    def kill(self) -> None:
        """Last-resort cleanup: SIGKILL this server's process groups (only processes it started)."""
        pids = self._seen | descendants(self.process.pid) | {self.process.pid}
        groups = set()
        for pid in pids:
            try:
                groups.add(os.getpgid(pid))
            except ProcessLookupError:
                continue
        for group in groups:
            if group in pids:  # only groups led by a process this server started
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(group, signal.SIGKILL)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        self._log.close()


def _ignore_sigint() -> None:
    # Start the server as `quantbot dev &` in a script would be: a shell without job
    # control ignores SIGINT in background jobs, and children inherit that. SIGTERM
    # must still stop everything.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "gone"
    return stat[stat.rindex(")") + 2 :].split()[0]
