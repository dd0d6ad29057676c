"""Dagster for a command: the definitions, the instance, and the catalog after the runs.

Loaded only once the command's inputs are known to be usable (inputs.py).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from quantbot_assets.settings import Settings, ensure_dagster_home

CATALOG_LOCK_WAIT_S = 20.0


def runtime(settings: Settings) -> tuple[Any, Any]:
    """Definitions for `settings` and the project's Dagster instance.

    Runs of earlier commands whose process is gone (killed, terminal closed)
    are marked failed first, so they never hold a run slot.
    """
    ensure_dagster_home(settings)
    import dagster as dg

    from quantbot_assets.definitions import build_definitions
    from quantbot_assets.stale_runs import fail_stale_runs

    defs = build_definitions(settings)
    # Dagster creates (and migrates) its SQLite storage on first use; two commands
    # starting at once on a fresh instance would race on it.
    with instance_lock():
        instance = dg.DagsterInstance.get()
        fail_stale_runs(
            instance,
            (defs.resources or {}).get("run_dirs"),
            log=lambda line: print(f"quantbot: {line}", file=sys.stderr),
        )
    return defs, instance


@contextlib.contextmanager
def instance_lock() -> Iterator[None]:
    """An exclusive lock on `$DAGSTER_HOME/.quantbot-instance.lock` for the block."""
    import fcntl

    home = Path(os.environ["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    with (home / ".quantbot-instance.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def catalog_runs(settings: Settings, outcomes: list[Any], as_json: bool) -> list[str]:
    """Register the command's finished run directories in the catalog now.

    The same writer lock and registration as `catalog-sync` and the catalog
    sensor (idempotent: the sensor later skips them). A busy or broken catalog
    never fails the backtest: it says so in one line.
    """
    from quantbot_assets.rundir import FAILED_MARKER, SUCCESS_MARKER

    run_dirs = [
        o.run_dir
        for o in outcomes
        if (o.run_dir / SUCCESS_MARKER).exists() or (o.run_dir / FAILED_MARKER).exists()
    ]
    if not run_dirs:
        return []
    try:
        from quantbot_assets.catalog.register import register_runs
        from quantbot_assets.catalog.writer import catalog_writer

        with catalog_writer(settings.catalog_path, lock_timeout_s=CATALOG_LOCK_WAIT_S) as conn:
            report = register_runs(conn, settings.runs_dir, run_dirs)
    except Exception as exc:  # the backtest itself succeeded: only say so
        from quantbot_assets.preflight import one_line

        print(
            f"quantbot: note: runs not catalogued yet ({one_line(str(exc), 200)}); "
            "the catalog sensor or `quantbot backtest catalog-sync` will",
            file=sys.stderr,
        )
        return []
    for rel, reason in report.rejected:
        print(f"quantbot: note: catalog rejected {rel}: {reason}", file=sys.stderr)
    if not as_json and (report.registered or report.skipped):
        print(f"catalogued {len(report.registered)} run(s) in {settings.catalog_path}")
    return list(report.registered)
