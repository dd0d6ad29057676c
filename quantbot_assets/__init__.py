"""quantbot_assets: backtests of crypto calls on Dagster."""
