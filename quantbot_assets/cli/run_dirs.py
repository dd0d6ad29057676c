"""`quantbot backtest list` and `diff`: run directories read from their run.json (no catalog)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from quantbot_assets.errors import UsageError


def _runs_dir(args: argparse.Namespace) -> Path:
    if args.runs_dir:
        return Path(args.runs_dir)
    from quantbot_assets.settings import Settings

    return Settings.from_env().runs_dir


def _unreadable_row(rel: str, markers: str, exc: Exception) -> dict[str, Any]:
    first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return {
        "run_id": None,
        "run_type": None,
        "status": "unreadable",
        "created_at": None,
        "marker": markers,
        "artifacts": "",
        "run_dir": rel,
        "error": first_line,
        "config_hash": None,
        "data_fingerprint": None,
    }


def manifest_rows(runs_dir: Path) -> list[dict[str, Any]]:
    """A row per run directory under `runs_dir`, newest first; unreadable ones shown, not hidden."""
    from quantbot_assets.catalog.scan import iter_run_dir_candidates, markers_present
    from quantbot_assets.rundir import read_manifest

    rows: list[dict[str, Any]] = []
    for run_dir in iter_run_dir_candidates(runs_dir):
        rel = str(run_dir.relative_to(runs_dir))
        markers = ",".join(markers_present(run_dir)) or "-"
        try:
            m = read_manifest(run_dir)
        except Exception as exc:  # OSError, ValidationError: shown, not hidden
            rows.append(_unreadable_row(rel, markers, exc))
            continue
        rows.append(
            {
                "run_id": m.run_id,
                "run_type": m.run_type,
                "status": m.status,
                "created_at": m.created_at,
                "marker": markers,
                "artifacts": ",".join(sorted(m.artifacts)),
                "run_dir": rel,
                "error": m.error,
                "config_hash": m.config_hash,
                "data_fingerprint": m.data_fingerprint,
            }
        )
    rows.sort(key=lambda r: (r["created_at"] or "", r["run_dir"]), reverse=True)
    return rows


def cmd_list(args: argparse.Namespace) -> int:
    runs_dir = _runs_dir(args)
    if not runs_dir.is_dir():
        raise UsageError(f"runs directory {runs_dir} does not exist")
    if args.limit < 1:
        raise UsageError(f"--limit must be at least 1, got {args.limit}")
    rows = manifest_rows(runs_dir)
    if args.same_as is not None:
        mine = [r for r in rows if r["run_id"] == args.same_as]
        if not mine:
            raise UsageError(f"no run {args.same_as!r} under {runs_dir}")
        key = (mine[0]["config_hash"], mine[0]["data_fingerprint"])
        if None in key:
            raise UsageError(
                f"run {args.same_as!r} has no config_hash or data_fingerprint in its run.json "
                "(written before run.json 1.2.0, or a run that read no data)"
            )
        rows = [r for r in rows if (r["config_hash"], r["data_fingerprint"]) == key]
    rows = rows[: args.limit]
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print("(no runs)")
    else:
        import pandas as pd

        print(pd.DataFrame(rows).fillna("").to_string(index=False))
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    """What differs between two runs; RunDiffError (one line) for a run that cannot be read."""
    from quantbot_assets.run_diff import diff_runs, format_diff

    diff = diff_runs(args.run_a, args.run_b, _runs_dir(args))
    print(json.dumps(diff, indent=2, default=str) if args.json else format_diff(diff))
    return 0
