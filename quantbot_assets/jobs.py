"""Jobs: one per kind of run directory, the catalog sync, and adding a policy from the UI."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from quantbot_assets.assets.catalog import CATALOG_RUN_TAG
from quantbot_assets.policy_registry import RegistryError, add_policy, get_policy, policy_json
from quantbot_assets.remote_runs import publish_finished_run
from quantbot_assets.resources import PolicyRegistryResource
from quantbot_assets.sensors import CATALOG_ASSETS, sync_policy_partitions
from quantbot_assets.stale_runs import tag_run_worker

path_only_job = dg.define_asset_job(
    "path_only_backtest",
    selection=dg.AssetSelection.assets("alerts", "paths", "errors"),
    description="Calls, truth layer and errors of one day (a path-only run directory).",
)
policy_job = dg.define_asset_job(
    "policy_backtest",
    selection=dg.AssetSelection.assets("trades", "summary"),
    description="Trades and summary of one policy on one day (a policy run directory).",
)
catalog_job = dg.define_asset_job(
    "catalog_sync",
    selection=dg.AssetSelection.assets(*CATALOG_ASSETS),
    tags={CATALOG_RUN_TAG: "job"},
    description="Register finished run directories, refresh golden exports and leaderboards.",
)
frontier_job = dg.define_asset_job(
    "frontier_search",
    selection=dg.AssetSelection.assets("frontier"),
    description="Policy-grid frontier of one month (an optimization run directory).",
)
walk_forward_job = dg.define_asset_job(
    "walk_forward_search",
    selection=dg.AssetSelection.assets("walk_forward"),
    description="Walk-forward frontier over months: chosen on train days, scored on test days.",
)


class NewPolicy(dg.Config):
    policy_id: str = Field(description="New id, e.g. trailing-20pct-after-30pct")
    policy_json: str = Field(
        description='The policy, e.g. {"kind":"fixed_stop","stop_loss_bps":500,"take_profit_bps":10000}'
    )


@dg.op
def add_policy_to_registry(
    context: dg.OpExecutionContext, config: NewPolicy, policy_registry: PolicyRegistryResource
) -> None:
    """Validate the policy, write it to policies.yaml and add its id to the policy dimension."""
    path = Path(policy_registry.path)
    try:
        added = add_policy(path, config.policy_id, config.policy_json)
    except (RegistryError, ValueError) as exc:
        raise dg.Failure(str(exc)) from None
    sync_policy_partitions(context.instance, path)
    policy = policy_json(get_policy(path, config.policy_id))
    state = "registered" if added else "already registered"
    context.log.info(f"{state}: {config.policy_id} = {policy}")


@dg.job(
    description="Add a named policy to policies.yaml and the policy partitions (launchpad config)."
)
def register_policy() -> None:
    add_policy_to_registry()


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
        yield from self._inner.execute(plan_context, execution_plan)
        # Every step is over: with QUANTBOT_RUNS_URL set, the run directory goes to the bucket.
        publish_finished_run(plan_context.dagster_run.run_id, plan_context.log.info)


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
