"""The catalog feature's definitions: its assets, `catalog_sync` and `run_catalog_sensor`."""

from pathlib import Path

import dagster as dg

from quantbot_assets.defs.catalog import assets
from quantbot_assets.defs.catalog.jobs import catalog_job
from quantbot_assets.defs.catalog.sensors import build_catalog_sensor
from quantbot_assets.run_directories import RunDirectories


def catalog_definitions(run_dirs: RunDirectories) -> dg.Definitions:
    """The catalog's definitions; its sensor watches `run_dirs`' runs root."""
    return dg.Definitions(
        assets=dg.load_assets_from_modules([assets]),
        jobs=[catalog_job],
        sensors=[build_catalog_sensor(Path(run_dirs.runs_dir))],
    )
