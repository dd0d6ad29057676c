"""The version-controlled registry of named exit policies (`policies.yaml`)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from quantbot_assets.engine import Policy, parse_policy
from quantbot_assets.rundir import atomic_write_bytes

# A policy id is a partition key and a path part: no '|', ',', '/', spaces.
POLICY_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")

HEADER = """\
# The policy registry: named exit policies, one per policy id.
# Policy ids are partition keys of the `trades` and `summary` assets: keep them
# stable, never change the definition under an existing id (add a new id).
# Fields and semantics: docs/semantics.md (Policies, Replay) and docs/engine.md.
# `quantbot policies sync` (and the policy_registry_sensor) registers new ids
# with Dagster; `quantbot backtest policy --policy-id ID --policy JSON` adds one.
"""


class RegistryError(ValueError):
    """The registry file or a policy in it is invalid."""


def check_policy_id(policy_id: str) -> str:
    if not POLICY_ID_PATTERN.match(policy_id):
        raise RegistryError(
            f"policy id {policy_id!r} is invalid: use lowercase letters, digits, '.', '_' "
            "and '-' (at most 64 characters, starting with a letter or digit)"
        )
    return policy_id


def _tidy(value: Any) -> Any:
    """Whole-number floats as ints (500 rather than 500.0), recursively."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _tidy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_tidy(item) for item in value]
    return value


def plain_policy(policy: Policy) -> dict[str, Any]:
    """A validated policy as plain JSON data, without unset optional fields."""
    return _tidy(policy.model_dump(mode="json", exclude_none=True))


def policy_json(policy: Policy) -> str:
    """Canonical JSON of a validated policy (stable key order)."""
    return json.dumps(plain_policy(policy), sort_keys=True, separators=(",", ":"))


def _raw_policies(path: Path) -> dict[str, Any]:
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError as exc:
        raise RegistryError(f"policy registry {path} does not exist") from exc
    except yaml.YAMLError as exc:
        raise RegistryError(f"policy registry {path} is not valid YAML: {exc}") from exc
    policies = document.get("policies") if isinstance(document, dict) else None
    if not isinstance(policies, dict):
        raise RegistryError(f"policy registry {path} needs a top-level 'policies:' mapping")
    return policies


def load_registry(path: Path) -> dict[str, Policy]:
    """All policies of the registry, validated; raises RegistryError naming the id."""
    registry: dict[str, Policy] = {}
    for policy_id, raw in _raw_policies(path).items():
        check_policy_id(str(policy_id))
        try:
            registry[str(policy_id)] = parse_policy(raw)
        except ValueError as exc:
            raise RegistryError(f"policy {policy_id!r} in {path}: {exc}") from exc
    return registry


def get_policy(path: Path, policy_id: str) -> Policy:
    registry = load_registry(path)
    if policy_id not in registry:
        known = ", ".join(sorted(registry)) or "none"
        raise RegistryError(f"policy id {policy_id!r} is not in {path} (known: {known})")
    return registry[policy_id]


def add_policy(path: Path, policy_id: str, policy: str | dict[str, Any] | Policy) -> bool:
    """Register `policy` under `policy_id`; return True if it was new.

    The same definition under the same id is a no-op; a different definition
    under an existing id is refused (ids name results already computed).
    """
    check_policy_id(policy_id)
    parsed = parse_policy(policy)
    raw = _raw_policies(path) if path.exists() else {}
    if policy_id in raw:
        existing = parse_policy(raw[policy_id])
        if policy_json(existing) != policy_json(parsed):
            raise RegistryError(
                f"policy id {policy_id!r} already names a different policy in {path}: "
                f"{policy_json(existing)}; choose a new id"
            )
        return False
    raw[policy_id] = plain_policy(parsed)
    body = yaml.safe_dump({"policies": raw}, sort_keys=False, default_flow_style=None)
    atomic_write_bytes(path, (HEADER + body).encode())
    return True
