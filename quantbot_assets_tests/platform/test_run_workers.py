"""Runs whose worker process dies are failed, whoever launched them; ghosts are cleaned up.

A run launched through the instance's run launcher (what the web UI's Launch
button and the daemon do: a code server starts a run worker subprocess) must
name its worker in its tags, so that `stale_run_sensor` fails it once the
worker is SIGKILLed, and never while the worker is alive.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from quantbot_assets.cli import main
from quantbot_assets.run_directories import RunDirectories
from quantbot_assets.stale_runs import (
    HOST_TAG,
    PID_RUN_TAG,
    PID_TAG,
    build_stale_run_sensor,
    fail_untagged_runs,
    process_alive,
)

SLOW_DEFS = textwrap.dedent(
    """
    import os, time
    from pathlib import Path
    import dagster as dg
    from quantbot_assets.executor import backtest_executor

    FLAG = Path(os.environ["QUANTBOT_TEST_FLAG_DIR"])

    @dg.asset
    def slow() -> None:
        (FLAG / "started").write_text(str(os.getpid()))
        deadline = time.monotonic() + 120
        while not (FLAG / "release").exists() and time.monotonic() < deadline:
            time.sleep(0.1)

    defs = dg.Definitions(
        assets=[slow],
        jobs=[dg.define_asset_job("slow_job", selection="slow")],
        executor=backtest_executor,
    )
    """
)


def _wait(predicate, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _run(instance: dg.DagsterInstance, tags: dict[str, str], parent: str | None = None) -> str:
    job = dg.Definitions(
        jobs=[dg.JobDefinition(name="j", graph_def=dg.GraphDefinition("g"))]
    ).resolve_job_def("j")
    run = instance.create_run_for_job(job, tags=tags, parent_run_id=parent, root_run_id=parent)
    instance.handle_run_event(
        run.run_id, dg.DagsterEvent(event_type_value="PIPELINE_START", job_name=run.job_name)
    )
    return run.run_id


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_launched_run_whose_worker_is_killed_is_failed_by_the_sensor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import PythonFileTarget

    (tmp_path / "slow_defs.py").write_text(SLOW_DEFS)
    flags = tmp_path / "flags"
    flags.mkdir()
    monkeypatch.setenv("QUANTBOT_TEST_FLAG_DIR", str(flags))
    run_dirs = RunDirectories(runs_dir=str(tmp_path / "runs"), project_dir=str(tmp_path))
    sensor = build_stale_run_sensor(run_dirs)
    (tmp_path / "home").mkdir()
    with (
        dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance,
        WorkspaceProcessContext(
            instance,
            PythonFileTarget(
                python_file=str(tmp_path / "slow_defs.py"),
                attribute="defs",
                working_directory=str(tmp_path),
                location_name="slow",
            ),
        ) as workspace,
    ):
        context = workspace.create_request_context()
        [entry] = context.get_code_location_entries().values()
        assert entry.code_location is not None, entry.load_error
        [repository] = entry.code_location.get_repositories().values()
        remote_job = repository.get_full_job("slow_job")
        sys.path.insert(0, str(tmp_path))
        try:
            import slow_defs  # type: ignore[import-not-found]
        finally:
            sys.path.remove(str(tmp_path))
        run = instance.create_run_for_job(
            slow_defs.defs.resolve_job_def("slow_job"),
            remote_job_origin=remote_job.get_remote_origin(),
            job_code_origin=remote_job.get_python_origin(),
        )
        instance.launch_run(run.run_id, context)
        _wait(lambda: (flags / "started").exists(), "the run's step to start")
        worker = int((flags / "started").read_text())
        tags = instance.get_run_by_id(run.run_id).tags  # type: ignore[union-attr]
        # The run names the very process that runs its step (in-process executor).
        assert tags[PID_TAG] == str(worker) and worker != os.getpid()
        assert tags[HOST_TAG] == socket.gethostname() and tags[PID_RUN_TAG] == run.run_id

        # Alive: several ticks leave it alone.
        for _ in range(3):
            sensor(dg.build_sensor_context(instance=instance))
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED  # type: ignore[union-attr]

        # The code server that launched the worker also notices a dead worker (its cleanup
        # thread, every few tenths of a second) and would race the sensor: it is paused
        # for the kill and the tick, as when the whole process tree is gone.
        server = int(Path(f"/proc/{worker}/stat").read_text().rsplit(")", 1)[1].split()[1])
        assert server not in (os.getpid(), 1)
        os.kill(server, signal.SIGSTOP)
        try:
            os.kill(worker, signal.SIGKILL)
            _wait(lambda: not process_alive(worker, tags.get("quantbot/pid_start")), "the kill")
            result = sensor(dg.build_sensor_context(instance=instance))
        finally:
            os.kill(server, signal.SIGCONT)
        assert isinstance(result, dg.SkipReason) and run.run_id in (result.skip_message or "")
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE  # type: ignore[union-attr]


def test_process_tags_copied_from_another_run_are_not_trusted(tmp_path: Path) -> None:
    """A re-execution carries its parent's tags until its own worker tags it."""
    host = socket.gethostname()
    sensor = build_stale_run_sensor(
        RunDirectories(runs_dir=str(tmp_path / "runs"), project_dir=str(tmp_path))
    )
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        dead = str(_dead_pid())
        parent = _run(instance, {PID_TAG: dead, HOST_TAG: host})
        copy_named = _run(instance, {PID_TAG: dead, HOST_TAG: host, PID_RUN_TAG: parent})
        legacy_child = _run(instance, {PID_TAG: dead, HOST_TAG: host}, parent=parent)
        own = _run(instance, {PID_TAG: dead, HOST_TAG: host})
        instance.add_run_tags(own, {PID_RUN_TAG: own})

        sensor(dg.build_sensor_context(instance=instance))

        def status(run_id: str) -> dg.DagsterRunStatus:
            return instance.get_run_by_id(run_id).status  # type: ignore[union-attr]

        assert status(parent) == dg.DagsterRunStatus.FAILURE  # its own tags, pre-PID_RUN_TAG
        assert status(own) == dg.DagsterRunStatus.FAILURE
        assert status(copy_named) == dg.DagsterRunStatus.STARTED
        assert status(legacy_child) == dg.DagsterRunStatus.STARTED


def test_a_reused_pid_or_a_zombie_is_judged_correctly() -> None:
    assert process_alive(os.getpid())
    assert not process_alive(os.getpid(), start="1")  # same id, another start time
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    _wait(
        lambda: Path(f"/proc/{child.pid}/stat").read_text().split(")")[-1].split()[0] == "Z",
        "zombie",
    )
    try:
        assert not process_alive(child.pid)  # exited, not reaped yet
    finally:
        child.wait()


def test_untagged_silent_runs_are_failed_by_cleanup_and_nothing_else(tmp_path: Path) -> None:
    run_dirs = RunDirectories(runs_dir=str(tmp_path / "runs"), project_dir=str(tmp_path))
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        ghost = _run(instance, {})
        tagged = _run(instance, {PID_TAG: str(_dead_pid()), HOST_TAG: socket.gethostname()})
        ghost_dir = run_dirs.run_dir(instance, ghost)
        ghost_dir.mkdir(parents=True)
        later = datetime.now(UTC) + timedelta(hours=2)

        assert fail_untagged_runs(instance, run_dirs, timedelta(hours=1)) == []  # not silent yet
        listed = fail_untagged_runs(instance, run_dirs, timedelta(hours=1), dry_run=True, now=later)
        assert [g.run_id for g in listed] == [ghost] and not listed[0].marked
        assert instance.get_run_by_id(ghost).status == dg.DagsterRunStatus.STARTED  # type: ignore[union-attr]

        [done] = fail_untagged_runs(instance, run_dirs, timedelta(hours=1), now=later)
        assert done.run_id == ghost and done.marked
        assert instance.get_run_by_id(ghost).status == dg.DagsterRunStatus.FAILURE  # type: ignore[union-attr]
        assert instance.get_run_by_id(tagged).status == dg.DagsterRunStatus.STARTED  # type: ignore[union-attr]
        assert (ghost_dir / "_FAILED").exists()


def test_runs_cleanup_command_prints_one_line_per_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("QUANTBOT_PROJECT_DIR", str(tmp_path))
    instance = dg.DagsterInstance.get()
    ghosts = [_run(instance, {}) for _ in range(2)]
    alive = _run(instance, {})

    # Only a run silent long enough counts: age the first two by an old last event.
    def aged(run_id: str) -> bool:
        return run_id in ghosts

    import quantbot_assets.stale_runs as stale_runs

    real = stale_runs._last_activity
    monkeypatch.setattr(
        stale_runs,
        "_last_activity",
        lambda inst, run: (
            real(inst, run) - timedelta(hours=3) if aged(run.run_id) else real(inst, run)
        ),
    )
    assert main(["runs", "cleanup", "--older-than", "2h", "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert sorted(
        line.split()[3] for line in out if line.startswith("would mark failed")
    ) == sorted(ghosts)
    assert all(instance.get_run_by_id(r).status == dg.DagsterRunStatus.STARTED for r in ghosts)  # type: ignore[union-attr]

    assert main(["runs", "cleanup", "--older-than", "2h"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len([line for line in out if line.startswith("marked failed")]) == 2
    statuses = {r: instance.get_run_by_id(r).status for r in [*ghosts, alive]}  # type: ignore[union-attr]
    assert statuses == {
        ghosts[0]: dg.DagsterRunStatus.FAILURE,
        ghosts[1]: dg.DagsterRunStatus.FAILURE,
        alive: dg.DagsterRunStatus.STARTED,
    }
    assert main(["runs", "cleanup", "--older-than", "soon"]) == 2
