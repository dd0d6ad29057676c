"""The `policy` partition dimension: one key per policy id of the registry (policies.yaml)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from quantbot_assets.policy_registry import load_registry

policy_partitions_def = dg.DynamicPartitionsDefinition(name="policy_id")
POLICY_DIMENSION = policy_partitions_def.name or "policy_id"


def missing_policy_ids(instance: dg.DagsterInstance, policy_ids: list[str]) -> list[str]:
    """The ids of `policy_ids` that the `policy` dimension does not have yet, in order."""
    known = set(instance.get_dynamic_partitions(POLICY_DIMENSION))
    return [pid for pid in policy_ids if pid not in known]


def registry_sync_request(
    instance: dg.DagsterInstance, registry_path: Path
) -> tuple[list[str], dg.AddDynamicPartitionsRequest | None]:
    """Policy ids in the registry that Dagster does not know yet, and the request adding them."""
    new = missing_policy_ids(instance, list(load_registry(registry_path)))
    return new, (policy_partitions_def.build_add_request(new) if new else None)


def add_policy_partitions(instance: dg.DagsterInstance, policy_ids: list[str]) -> list[str]:
    """Add the ids the `policy` dimension does not have yet, now; returns those added."""
    new = missing_policy_ids(instance, policy_ids)
    if new:
        instance.add_dynamic_partitions(POLICY_DIMENSION, new)
    return new


def sync_policy_partitions(instance: dg.DagsterInstance, registry_path: Path) -> list[str]:
    """Add the registry's new policy ids to the `policy` partition dimension now."""
    return add_policy_partitions(instance, list(load_registry(registry_path)))


def ensure_policy_partition(instance: dg.DagsterInstance, policy_id: str) -> None:
    """Add one policy id to the `policy` dimension if it is not there yet."""
    add_policy_partitions(instance, [policy_id])
