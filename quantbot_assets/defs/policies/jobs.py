"""`register_policy`: add a named policy to the registry and the `policy` dimension from the UI."""

from pathlib import Path

import dagster as dg
from pydantic import Field

from quantbot_assets.defs.policies.partitions import sync_policy_partitions
from quantbot_assets.policy_registry import RegistryError, add_policy, get_policy, policy_json
from quantbot_assets.resources import PolicyRegistryResource


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
