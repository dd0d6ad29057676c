"""Sensors: keep the policy dimension in sync with the registry; catalog finished runs."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from quantbot_assets.partitions import policy_partitions_def
from quantbot_assets.policy_registry import RegistryError, load_registry


def registry_sync_request(
    instance: dg.DagsterInstance, registry_path: Path
) -> tuple[list[str], dg.AddDynamicPartitionsRequest | None]:
    """Policy ids in the registry that Dagster does not know yet, and the request adding them."""
    known = set(instance.get_dynamic_partitions(policy_partitions_def.name or "policy_id"))
    new = [pid for pid in load_registry(registry_path) if pid not in known]
    return new, (policy_partitions_def.build_add_request(new) if new else None)


def sync_policy_partitions(instance: dg.DagsterInstance, registry_path: Path) -> list[str]:
    """Add the registry's new policy ids to the `policy` partition dimension now."""
    new, _request = registry_sync_request(instance, registry_path)
    if new:
        instance.add_dynamic_partitions(policy_partitions_def.name or "policy_id", new)
    return new


def build_policy_registry_sensor(registry_path: Path) -> dg.SensorDefinition:
    @dg.sensor(
        name="policy_registry_sensor",
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Adds policy ids from {registry_path.name} to the policy partition dimension.",
    )
    def policy_registry_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        try:
            new, request = registry_sync_request(context.instance, registry_path)
        except RegistryError as exc:
            return dg.SkipReason(f"policy registry is invalid: {exc}")
        if request is None:
            return dg.SkipReason("policy registry and partitions are in sync")
        context.log.info(f"adding policy ids {new}")
        return dg.SensorResult(dynamic_partitions_requests=[request])

    return policy_registry_sensor
