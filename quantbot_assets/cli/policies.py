"""`quantbot policies list | sync | add`: the policy registry (policies.yaml)."""

from __future__ import annotations

import argparse

from quantbot_assets.cli.inputs import settings_from_args
from quantbot_assets.errors import UsageError
from quantbot_assets.settings import ensure_dagster_home


def cmd_policies(args: argparse.Namespace) -> int:
    from quantbot_assets.policy_registry import add_policy, load_registry, policy_json

    settings = settings_from_args(args)
    try:
        if args.action == "add":
            if not args.policy_id or not args.policy:
                raise UsageError("policies add needs --policy-id and --policy")
            added = add_policy(settings.policy_registry, args.policy_id, args.policy)
            print(f"{'added' if added else 'already registered'}: {args.policy_id}")
        registry = load_registry(settings.policy_registry)
    except ValueError as exc:  # RegistryError, or a policy the engine refuses
        raise UsageError(str(exc)) from None
    if args.action == "list":
        for policy_id, policy in registry.items():
            print(f"{policy_id}\t{policy_json(policy)}")
        return 0
    ensure_dagster_home(settings)
    import dagster as dg

    from quantbot_assets.defs.policies.partitions import sync_policy_partitions

    new = sync_policy_partitions(dg.DagsterInstance.get(), settings.policy_registry)
    print(
        f"policy partitions in sync ({len(registry)} policies; added: {', '.join(new) or 'none'})"
    )
    return 0
