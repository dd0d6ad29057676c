"""`policy_registry_sensor`: keeps the `policy` partition dimension in sync with the registry."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from quantbot_assets.defs.policies.partitions import registry_sync_request
from quantbot_assets.policy_registry import RegistryError
from quantbot_assets.resources import PolicyRegistryResource

# The sensor's definition, applied below to its two ways of finding the registry.
registry_sensor = dg.sensor(
    name="policy_registry_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Adds policy ids from the policy registry (policies.yaml) to the policy "
    "partition dimension.",
)


def registry_tick(
    context: dg.SensorEvaluationContext, registry_path: Path
) -> dg.SensorResult | dg.SkipReason:
    try:
        new, request = registry_sync_request(context.instance, registry_path)
    except RegistryError as exc:
        return dg.SkipReason(f"policy registry is invalid: {exc}")
    if request is None:
        return dg.SkipReason("policy registry and partitions are in sync")
    context.log.info(f"adding policy ids {new}")
    return dg.SensorResult(dynamic_partitions_requests=[request])


@registry_sensor
def policy_registry_sensor(
    context: dg.SensorEvaluationContext, policy_registry: PolicyRegistryResource
) -> dg.SensorResult | dg.SkipReason:
    return registry_tick(context, Path(policy_registry.path))


def build_policy_registry_sensor(registry_path: Path) -> dg.SensorDefinition:
    """`policy_registry_sensor` over one registry file, without resources (a tick in a test)."""

    @registry_sensor
    def policy_registry_sensor(
        context: dg.SensorEvaluationContext,
    ) -> dg.SensorResult | dg.SkipReason:
        return registry_tick(context, registry_path)

    return policy_registry_sensor
