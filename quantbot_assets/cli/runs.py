"""`quantbot runs cleanup`: Dagster runs of killed workers from before runs were tagged."""

from __future__ import annotations

import argparse

from quantbot_assets.cli.inputs import settings_from_args
from quantbot_assets.cli.runtime import instance_lock
from quantbot_assets.settings import ensure_dagster_home


def cmd_runs_cleanup(args: argparse.Namespace) -> int:
    """Fail the STARTING/STARTED runs without process tags that have been silent too long."""
    from datetime import UTC, datetime, timedelta

    settings = settings_from_args(args)
    ensure_dagster_home(settings)
    import dagster as dg

    from quantbot_assets.run_directories import RunDirectories
    from quantbot_assets.stale_runs import fail_untagged_runs

    run_dirs = RunDirectories(
        runs_dir=str(settings.runs_dir), project_dir=str(settings.project_dir)
    )
    now = datetime.now(UTC)
    with instance_lock():
        instance = dg.DagsterInstance.get()
        ghosts = fail_untagged_runs(
            instance,
            run_dirs,
            timedelta(milliseconds=args.older_than.ms),
            dry_run=args.dry_run,
            now=now,
        )
    verb = "would mark failed" if args.dry_run else "marked failed"
    for ghost in ghosts:
        idle = int((now - ghost.last_event).total_seconds())
        print(
            f"{verb} {ghost.run_id} {ghost.status} {ghost.job_name} "
            f"last event {ghost.last_event.isoformat(timespec='seconds')} ({idle}s ago)"
        )
    print(
        f"{len(ghosts)} run(s) without process tags and silent for {args.older_than.text} or more"
        + (" (dry run: nothing changed)" if args.dry_run else "")
    )
    return 0
