"""The Dagster definitions, one folder per feature; `quantbot_assets.definitions` merges them."""
