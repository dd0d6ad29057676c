"""Fault injection: seeded trials of hostile inputs, kills and races (issue 10).

`harness.py` runs the groups and prints the table; each module listed in
`GROUP_MODULES` registers its groups with `@harness.fault_group`. Run it with
`python bench/fault_injection.py [--smoke | --full]`.
"""

GROUP_MODULES: list[str] = [
    "quantbot_assets_tests.faults.catalog_faults",
    "quantbot_assets_tests.faults.registry_faults",
]
