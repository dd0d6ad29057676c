"""The executor of every run: Dagster's in-process or multiprocess executor, after tagging the
run with the process that runs it (so `stale_run_sensor` can fail the run if it dies)."""

import gc
from collections.abc import Iterator
from typing import Any

import dagster as dg

from quantbot_assets.remote_runs import publish_finished_run
from quantbot_assets.stale_runs import tag_run_worker


def _executor_config(config: dict) -> dict:
    if config["mode"] == "multiprocess":
        return {"multiprocess": {"max_concurrent": config["max_concurrent"]}}
    return {"in_process": {}}


class RunWorkerExecutor(dg.Executor):
    """Dagster's executor, after tagging the run with the process that runs it.

    An executor's `execute` runs once per run, in the run worker itself (the
    subprocess the web UI's run launcher starts, or the `dagster asset
    materialize` process), whichever executor mode runs the steps; resources
    and IO managers would run in each step's process instead. The tags let
    `stale_run_sensor` fail the run if that process dies (stale_runs.py).
    """

    def __init__(self, inner: dg.Executor) -> None:
        self._inner = inner

    @property
    def retries(self) -> Any:
        return self._inner.retries

    @property
    def step_dependency_config(self) -> Any:
        return self._inner.step_dependency_config

    def execute(self, plan_context: Any, execution_plan: Any) -> Iterator[Any]:
        tag_run_worker(plan_context.instance, plan_context.dagster_run)
        _freeze_startup_objects()
        yield from self._inner.execute(plan_context, execution_plan)
        # Every step is over: with QUANTBOT_RUNS_URL set, the run directory goes to the bucket.
        publish_finished_run(plan_context.dagster_run.run_id, plan_context.log.info)


def _freeze_startup_objects() -> None:
    """Once per process, before its first run: the objects alive now (Dagster, the
    definitions, the instance: a few million) leave the garbage collector's generations.
    They live as long as the process, and each full collection traversed all of them (about
    0.1 s each). Collection is on from here (`quantbot` defers it during its start-up)."""
    global _frozen
    if not _frozen:
        gc.freeze()
        _frozen = True
    gc.enable()


_frozen = False


run_worker_executor = dg.ExecutorDefinition(
    name="multi_or_in_process_tagged",
    config_schema=dg.multi_or_in_process_executor.config_schema.as_field(),
    requirements=dg.multi_or_in_process_executor.get_requirements,
    executor_creation_fn=lambda init_context: RunWorkerExecutor(
        dg.multi_or_in_process_executor.executor_creation_fn(init_context)  # type: ignore[misc]
    ),
    description="multi_or_in_process_executor that tags the run with its worker process",
)

# In process unless a run asks otherwise: a multiprocess step costs about 3 s
# here, more than a day's backtest. Large backfills may set
# `execution: config: {mode: multiprocess, max_concurrent: 2}`.
backtest_executor = run_worker_executor.configured(
    _executor_config,
    config_schema={
        "mode": dg.Field(
            dg.Enum("ExecutionMode", [dg.EnumValue("in_process"), dg.EnumValue("multiprocess")]),
            default_value="in_process",
            description="in_process (default) or multiprocess",
        ),
        "max_concurrent": dg.Field(
            int, default_value=2, description="multiprocess: parallel steps"
        ),
    },
    name="in_process_or_multiprocess",
)
