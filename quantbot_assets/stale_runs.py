"""Runs whose process is gone: found by their process tags and marked failed.

Every run carries, in its tags, the process id, the host and the start time of
the process that runs it (its run worker) and the run id the tags were made
for: the `quantbot` command tags the runs it launches in process, and every
other run (launched from the web UI, a sensor, `dagster asset materialize`)
tags itself as its executor starts in the run worker (`run_worker_executor`
in executor.py, `tag_run_worker`). A run killed outright
(SIGKILL, a closed terminal, a crash) stays STARTED in Dagster's storage and
would count against `max_concurrent_runs` for good; `fail_stale_runs` finds
the runs of this host whose process no longer exists, reports them failed to
Dagster and marks their run directory failed (`_FAILED`, status failed), so
they are never reused nor catalogued as complete. The command calls it before
it launches anything, and `stale_run_sensor` (under `quantbot dev`) every
minute.

Tags copied from another run (re-execution, "open in launchpad") name that
other run and are ignored, so a new run is never failed for its parent's dead
process. Runs from before the tags existed ("ghosts" still STARTED after
their worker died) are failed once by `quantbot runs cleanup`
(`fail_untagged_runs`).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg

from quantbot_assets.run_directories import RunDirectories
from quantbot_assets.rundir import FAILED_MARKER, SUCCESS_MARKER, record_checks_not_run

PID_TAG = "quantbot/pid"
HOST_TAG = "quantbot/host"
PID_START_TAG = "quantbot/pid_start"  # guards against a reused process id
PID_RUN_TAG = "quantbot/pid_run"  # the run the process tags were made for

# Statuses of a run that has not ended; a run of a dead process in any of them is a ghost.
UNFINISHED = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def _proc_stat(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/<pid>/stat (Linux), None elsewhere or if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    return stat[stat.rfind(")") + 2 :].split()


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), None elsewhere or if gone."""
    fields = _proc_stat(pid)
    return fields[19] if fields is not None and len(fields) > 19 else None


def process_tags(run_id: str | None = None) -> dict[str, str]:
    """Tags naming this process, for the run `run_id` it runs."""
    tags = {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}
    start = _process_start(os.getpid())
    if start is not None:
        tags[PID_START_TAG] = start
    if run_id is not None:
        tags[PID_RUN_TAG] = run_id
    return tags


def has_own_process_tags(run: dg.DagsterRun) -> bool:
    """Whether `run`'s process tags were made for it (not copied from a parent run)."""
    tags = run.tags
    if PID_TAG not in tags:
        return False
    if PID_RUN_TAG in tags:
        return tags[PID_RUN_TAG] == run.run_id
    # Tags written before PID_RUN_TAG existed: trusted unless the run is a copy.
    return run.parent_run_id is None


def tag_run_worker(instance: dg.DagsterInstance, run: dg.DagsterRun) -> None:
    """Tag `run` with this process (its run worker), unless it already names it."""
    if has_own_process_tags(run) and run.tags.get(PID_TAG) == str(os.getpid()):
        return
    instance.add_run_tags(run.run_id, process_tags(run.run_id))


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
    fields = _proc_stat(pid)
    if fields is not None and fields[0] in ("Z", "X"):
        return False  # killed, not yet reaped by its parent (a run worker of a code server)
    if start is not None:
        now = fields[19] if fields is not None and len(fields) > 19 else None
        if now is not None and now != start:
            return False  # the id was reused by another process
    return True


def _dead_process(run: dg.DagsterRun, host: str) -> str | None:
    """Why `run`'s process is known to be gone, or None (alive, other host, or not ours)."""
    tags = run.tags
    if tags.get(HOST_TAG) != host or not has_own_process_tags(run):
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
    if (run_dir / SUCCESS_MARKER).exists():
        # Complete, but its checks (run after the marker) will never run now.
        record_checks_not_run(run_dir, message)
        return run_dir
    if (run_dir / FAILED_MARKER).exists():
        return run_dir
    return run_dirs.mark_failed(instance, run_id, "process", message)


# Runs that may be ghosts from before process tags: started, never finished.
GHOST_STATUSES = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]


@dataclass(frozen=True)
class GhostRun:
    run_id: str
    status: str
    job_name: str
    last_event: datetime  # UTC; the run's creation when it has no event
    marked: bool  # False in a dry run


def _last_activity(instance: dg.DagsterInstance, run: dg.DagsterRun) -> datetime:
    records = instance.get_records_for_run(run.run_id, limit=1, ascending=False).records
    if records:
        return datetime.fromtimestamp(records[0].timestamp, UTC)
    record = instance.get_run_record_by_id(run.run_id)
    created = record.create_timestamp if record is not None else datetime.now(UTC)
    return created if created.tzinfo is not None else created.replace(tzinfo=UTC)


def fail_untagged_runs(
    instance: dg.DagsterInstance,
    run_dirs: RunDirectories | None,
    older_than: timedelta,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
) -> list[GhostRun]:
    """Mark failed the STARTING/STARTED runs with no process tags and no event for `older_than`.

    Such runs come from before runs were tagged with their process: nothing
    else can tell whether their worker is alive, so an event-less stretch
    longer than any real step is the evidence. Runs with process tags are
    left to `fail_stale_runs`, which checks their process.
    """
    now = now or datetime.now(UTC)
    found: list[GhostRun] = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=GHOST_STATUSES)):
        if PID_TAG in run.tags:
            continue
        last = _last_activity(instance, run)
        if now - last < older_than:
            continue
        if not dry_run:
            message = (
                f"marked failed by `quantbot runs cleanup`: no process tag and no event "
                f"since {last.isoformat(timespec='seconds')}"
            )
            instance.report_run_failed(run, message)
            mark_run_dir_failed(instance, run_dirs, run.run_id, message)
        found.append(GhostRun(run.run_id, run.status.value, run.job_name, last, not dry_run))
    return found


# The sensor's definition, applied below to the resource and to a given RunDirectories.
stale_sensor = dg.sensor(
    name="stale_run_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Marks failed the runs whose process (a `quantbot` command or a run worker) is "
        "gone (killed, crashed, terminal closed), so they never hold a run slot."
    ),
)


def stale_tick(context: dg.SensorEvaluationContext, run_dirs: RunDirectories) -> dg.SkipReason:
    stale = fail_stale_runs(context.instance, run_dirs, log=context.log.warning)
    if not stale:
        return dg.SkipReason("no run of a dead process")
    return dg.SkipReason(
        f"marked {len(stale)} run(s) of dead processes failed: "
        + ", ".join(s.run_id for s in stale)
    )


@stale_sensor
def stale_run_sensor(
    context: dg.SensorEvaluationContext, run_dirs: RunDirectories
) -> dg.SkipReason:
    return stale_tick(context, run_dirs)


def build_stale_run_sensor(run_dirs: RunDirectories) -> dg.SensorDefinition:
    """`stale_run_sensor` over given run directories, without resources (a tick in a test)."""

    @stale_sensor
    def stale_run_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        return stale_tick(context, run_dirs)

    return stale_run_sensor
