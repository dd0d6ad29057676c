"""Where run directories live, and which `RunDirectory` a Dagster run writes.

The resource turns what Dagster knows about a run (its id, when it was
created, its job, the assets and checks it plans, its log) into a plain
`RunDirectory` (run_directory.py), which keeps the directory's lifecycle.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from quantbot_assets.run_directory import RUN_TYPE_ORDER, RunDirectory, RunPlan, run_type_of
from quantbot_assets.rundir import RunType, run_dir_path
from quantbot_assets.schemas import ARTIFACT_FILES

# Each artifact asset declares the kind of run directory it belongs in (artifact_assets.py).
RUN_TYPE_TAG = "quantbot/run_type"


def run_created(instance: dg.DagsterInstance, run_id: str) -> datetime:
    """When Dagster created the run (its directory's month comes from this)."""
    record = instance.get_run_record_by_id(run_id)
    return record.create_timestamp if record is not None else datetime.now(UTC)


def run_log_lines(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """The run's Dagster log lines so far, for `logs/stdout.txt` (the UI keeps the full log)."""
    lines = [f"# Dagster run {run_id}: the full event log is in the Dagster UI under Runs"]
    for entry in instance.all_logs(run_id):
        if not entry.user_message:
            continue  # structured events (materializations...) are in the UI
        when = datetime.fromtimestamp(entry.timestamp, UTC).isoformat(timespec="milliseconds")
        level = logging.getLevelName(entry.level)
        lines.append(f"{when} {level:<7} {entry.step_key or '-':<20} {entry.user_message}")
    return lines


def job_plan(job_def: dg.JobDefinition, run: dg.DagsterRun) -> tuple[RunType, list[str], list[str]]:
    """(run type, artifacts, checks) that this run of `job_def` materializes and records.

    The artifacts are those of the run's asset selection (or of its job) in
    `ARTIFACT_FILES` order; the run type is the one they declare. The checks
    are those of the run's check-only steps (the `@multi_asset_check`s),
    narrowed by the run's check and step selection (a re-execution); checks
    an asset step yields itself (the blocking lookahead checks) are not
    listed: they pass before `_SUCCESS` or the step fails.

    Dagster has no public API for a job's assets, their tags and its check
    steps: `job_def.asset_layer` is the job's own record of them, read here
    and nowhere else.
    """
    layer = job_def.asset_layer
    selected = run.asset_selection or set(layer.executable_asset_keys)
    by_name = {key.path[-1]: key for key in selected}
    artifacts = [name for name in ARTIFACT_FILES if name in by_name]
    declared = {layer.get(by_name[name]).tags.get(RUN_TYPE_TAG) for name in artifacts}
    run_type = run_type_of(t for t in RUN_TYPE_ORDER if t in declared)
    check_selection = run.asset_check_selection
    steps = set(run.step_keys_to_execute) if run.step_keys_to_execute is not None else None
    checks: set[str] = set()
    for data in layer.data:
        if data.assets_def.keys:
            continue  # an asset step: its own checks run before its outputs
        if steps is not None and data.node_handle.name not in steps:
            continue
        for key in data.assets_def.check_keys:
            if check_selection is None or key in check_selection:
                checks.add(key.name)
    return run_type, artifacts, sorted(checks)


class RunDirectories(dg.ConfigurableResource):
    """Where run directories live (`runs/` by default; QUANTBOT_RUNS_DIR)."""

    runs_dir: str
    project_dir: str = "."

    def run_dir(self, instance: dg.DagsterInstance, run_id: str) -> Path:
        return run_dir_path(Path(self.runs_dir), run_id, run_created(instance, run_id))

    def _directory(self, instance: dg.DagsterInstance, run_id: str, plan: RunPlan) -> RunDirectory:
        return RunDirectory(
            run_dir_path(Path(self.runs_dir), run_id, plan.created),
            run_id,
            plan,
            project_dir=self.project_dir,
            run_log=lambda: run_log_lines(instance, run_id),
        )

    def for_step(
        self, instance: dg.DagsterInstance, job_def: dg.JobDefinition, run: dg.DagsterRun
    ) -> RunDirectory:
        """The directory of a run whose step is executing (its plan from the run's job)."""
        run_type, artifacts, checks = job_plan(job_def, run)
        plan = RunPlan(
            run_type=run_type,
            created=run_created(instance, run.run_id),
            job_name=run.job_name,
            planned_artifacts=tuple(artifacts),
            planned_checks=tuple(checks),
        )
        return self._directory(instance, run.run_id, plan)

    def open(self, context: dg.AssetExecutionContext) -> RunDirectory:
        """The directory of the run this asset step belongs to."""
        return self.for_step(context.instance, context.job_def, context.run)

    def begin(self, context: dg.AssetExecutionContext) -> RunDirectory:
        """Create the step's run directory (pending, its partition keys), then mark it running."""
        directory = self.open(context)
        partitioned = context.assets_def.partitions_def is not None
        keys = [str(key) for key in context.partition_keys] if partitioned else []
        directory.begin({key.to_user_string(): keys for key in context.selected_asset_keys})
        directory.mark_running()
        return directory

    def mark_failed(
        self,
        instance: dg.DagsterInstance,
        run_id: str,
        step_key: str,
        error: str,
        run_type: RunType = "path-only",
    ) -> Path:
        """Status failed and `_FAILED` in the run's directory (a step or its process failed)."""
        run = instance.get_run_by_id(run_id)
        plan = RunPlan(
            run_type=run_type,
            created=run_created(instance, run_id),
            job_name=run.job_name if run is not None else None,
        )
        directory = self._directory(instance, run_id, plan)
        directory.fail(step_key, error)
        return directory.path


@dg.failure_hook(required_resource_keys={"run_dirs"})
def mark_run_failed(context: dg.HookContext) -> None:
    """Write status failed and _FAILED into the run directory of a failed step."""
    error = repr(context.op_exception) if context.op_exception is not None else "step failed"
    declared = context.op.tags.get(RUN_TYPE_TAG)  # what the step's artifact asset declares
    run_dir = context.resources.run_dirs.mark_failed(
        context.instance,
        context.run_id,
        context.step_key,
        error,
        run_type_of(t for t in RUN_TYPE_ORDER if t == declared),
    )
    context.log.error(f"run directory {run_dir} marked failed")
