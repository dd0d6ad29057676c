"""The policies feature's definitions: `register_policy` and `policy_registry_sensor`."""

import dagster as dg

from quantbot_assets.defs.policies.jobs import register_policy
from quantbot_assets.defs.policies.sensors import policy_registry_sensor


def policies_definitions() -> dg.Definitions:
    return dg.Definitions(jobs=[register_policy], sensors=[policy_registry_sensor])
