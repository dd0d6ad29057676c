"""Runs whose process is gone: found by their process tags and marked failed.

Every run the `quantbot` command launches (in process) carries the process id,
the host and the process start time in its tags. A run killed outright
(SIGKILL, a closed terminal, a crash) stays STARTED in Dagster's storage and
would count against `max_concurrent_runs` for good; `fail_stale_runs` finds
the runs of this host whose process no longer exists, reports them failed to
Dagster and marks their run directory failed (`_FAILED`, status failed), so
they are never reused nor catalogued as complete. The command calls it before
it launches anything, and `stale_run_sensor` (under `quantbot dev`) every
minute.

Runs launched by the daemon (web UI) have no such tags; Dagster's run
monitoring (dagster.yaml `run_monitoring`) covers them.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from quantbot_assets.io_manager import RunDirectories
from quantbot_assets.rundir import FAILED_MARKER, SUCCESS_MARKER

PID_TAG = "quantbot/pid"
HOST_TAG = "quantbot/host"
PID_START_TAG = "quantbot/pid_start"  # guards against a reused process id

# Statuses of a run that has not ended; a run of a dead process in any of them is a ghost.
UNFINISHED = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), None elsewhere or if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def process_tags() -> dict[str, str]:
    """Tags naming this process, for every run it launches."""
    tags = {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}
    start = _process_start(os.getpid())
    if start is not None:
        tags[PID_START_TAG] = start
    return tags


def process_alive(pid: int, start: str | None = None) -> bool:
    """Whether process `pid` exists (and, if `start` is known, is the same process)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    if start is not None:
        now = _process_start(pid)
        if now is not None and now != start:
            return False  # the id was reused by another process
    return True


def _dead_process(run: dg.DagsterRun, host: str) -> str | None:
    """Why `run`'s process is known to be gone, or None (alive, other host, or not ours)."""
    tags = run.tags
    if tags.get(HOST_TAG) != host or PID_TAG not in tags:
        return None
    try:
        pid = int(tags[PID_TAG])
    except ValueError:
        return None
    if process_alive(pid, tags.get(PID_START_TAG)):
        return None
    return f"process {pid} on {host} that ran it is gone (killed or crashed)"


@dataclass(frozen=True)
class StaleRun:
    run_id: str
    reason: str
    run_dir: Path | None  # marked failed; None when the run never created one


def fail_stale_runs(
    instance: dg.DagsterInstance,
    run_dirs: RunDirectories | None,
    *,
    host: str | None = None,
    log: Callable[[str], None] | None = None,
) -> list[StaleRun]:
    """Report failed every unfinished run of this host whose process is gone."""
    host = host or socket.gethostname()
    found: list[StaleRun] = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=UNFINISHED)):
        reason = _dead_process(run, host)
        if reason is None:
            continue
        message = f"marked failed: the {reason}"
        instance.report_run_failed(run, message)
        run_dir = mark_run_dir_failed(instance, run_dirs, run.run_id, message)
        found.append(StaleRun(run.run_id, reason, run_dir))
        if log is not None:
            log(f"run {run.run_id} {message}")
    return found


def mark_run_dir_failed(
    instance: dg.DagsterInstance, run_dirs: RunDirectories | None, run_id: str, message: str
) -> Path | None:
    """Write status failed and `_FAILED` into the run's directory, if it has one unfinished.

    A directory with `_SUCCESS` is left alone: every artifact it planned was
    written before the marker, so it is complete whatever happened after.
    """
    if run_dirs is None:
        return None
    run_dir = run_dirs.run_dir(instance, run_id)
    if not run_dir.is_dir():
        return None
    if (run_dir / SUCCESS_MARKER).exists() or (run_dir / FAILED_MARKER).exists():
        return run_dir
    return run_dirs.mark_failed(instance, run_id, "process", message)


def build_stale_run_sensor(run_dirs: RunDirectories) -> dg.SensorDefinition:
    @dg.sensor(
        name="stale_run_sensor",
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Marks failed the runs of `quantbot` commands whose process is gone (killed, "
            "crashed, terminal closed), so they never hold a run slot."
        ),
    )
    def stale_run_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        stale = fail_stale_runs(context.instance, run_dirs, log=context.log.warning)
        if not stale:
            return dg.SkipReason("no run of a dead process")
        return dg.SkipReason(
            f"marked {len(stale)} run(s) of dead processes failed: "
            + ", ".join(s.run_id for s in stale)
        )

    return stale_run_sensor
