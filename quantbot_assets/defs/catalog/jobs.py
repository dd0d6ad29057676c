"""`catalog_sync`: register finished run directories, refresh golden exports and leaderboards."""

import dagster as dg

from quantbot_assets.defs.catalog.assets import CATALOG_GROUP, CATALOG_RUN_TAG

catalog_job = dg.define_asset_job(
    "catalog_sync",
    selection=dg.AssetSelection.groups(CATALOG_GROUP),
    tags={CATALOG_RUN_TAG: "job"},
    description="Register finished run directories, refresh golden exports and leaderboards.",
)
