"""Run directories, the catalog database and the golden exports shared through object storage.

Selected by the environment only (docs/deploy.md); with none of these
variables set nothing here does anything and every file stays on local disk:

- `QUANTBOT_RUNS_URL` (`s3://bucket/runs`): when a run ends, its run worker
  uploads its run directory to `<url>/<YYYY-MM>/run_id=<id>/` in publication
  order (every artifact and check record, then `run.json`, then the marker;
  `storage.publish_tree`). A run killed outright uploads nothing, so the
  bucket never holds a marker of a run that did not finish. The catalog
  sensor mirrors run directories whose marker is in the bucket into its
  local runs root before it scans (readers trust only the marker), and the
  catalog run does the same for the directories it registers.
- `QUANTBOT_CATALOG_URL`: the catalog run starts from the snapshot published
  there (the last writer's state: catalog runs are queued one at a time
  across the deployment by the `quantbot/catalog` run-queue limit) and
  publishes it again after its write (`catalog/remote.py`).
- `QUANTBOT_EXPORTS_URL`: the golden exports are uploaded there after each
  refresh, `_export_status.json` last.

Each process works on its own local copy (runs root, catalog file, exports
directory); nothing but the bucket is shared.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from quantbot_assets.catalog.exports import STATUS_FILE
from quantbot_assets.catalog.remote import catalog_url
from quantbot_assets.rundir import (
    FAILED_MARKER,
    MONTH_PATTERN,
    RUN_DIR_PREFIX,
    SUCCESS_MARKER,
    record_checks_not_run,
)
from quantbot_assets.settings import Settings
from quantbot_assets.storage import (
    StorageError,
    exists,
    fetch_if_changed,
    get_file,
    is_url,
    list_files,
    open_location,
    publication_order,
    publish_tree,
    put_file,
)

RUNS_URL_ENV = "QUANTBOT_RUNS_URL"
EXPORTS_URL_ENV = "QUANTBOT_EXPORTS_URL"
_MARKERS = (SUCCESS_MARKER, FAILED_MARKER)


def _url(name: str, env: Mapping[str, str] | None) -> str | None:
    env = os.environ if env is None else env
    value = env.get(name, "").strip()
    if not value:
        return None
    if not is_url(value):
        raise StorageError(f"{name}={value!r} is not a URL (e.g. s3://bucket/prefix)")
    return value.rstrip("/")


def runs_url(env: Mapping[str, str] | None = None) -> str | None:
    return _url(RUNS_URL_ENV, env)


def exports_url(env: Mapping[str, str] | None = None) -> str | None:
    return _url(EXPORTS_URL_ENV, env)


def publish_run(runs_root: Path, run_id: str, url: str) -> str | None:
    """Upload the finished run directory of `run_id`; its URL, or None without a marker.

    Called once the run's steps are over: a planned check without an outcome
    will never run, so it is recorded `not_run` before the upload (the
    catalog registers a run only once every planned check has an outcome).
    """
    found = sorted(runs_root.glob(f"*/{RUN_DIR_PREFIX}{run_id}"))
    if not found:
        return None
    run_dir = found[-1]
    if not any((run_dir / marker).exists() for marker in _MARKERS):
        return None  # readers would not trust it; nothing to publish
    if (run_dir / SUCCESS_MARKER).exists():
        record_checks_not_run(run_dir, "the run ended before this check ran")
    rel = run_dir.relative_to(runs_root).as_posix()
    publish_tree(run_dir, open_location(url).child(rel))
    return f"{url}/{rel}"


def publish_finished_run(run_id: str, log: Callable[[str], None]) -> str | None:
    """`publish_run` for this process's runs root, when QUANTBOT_RUNS_URL is set."""
    url = runs_url()
    if url is None:
        return None
    published = publish_run(Settings.from_env().runs_dir, run_id, url)
    if published is not None:
        log(f"run directory published to {published}")
    return published


def _run_dir_of(rel: str) -> str | None:
    parts = rel.split("/")
    if (
        len(parts) < 3
        or not MONTH_PATTERN.match(parts[0])
        or not parts[1].startswith(RUN_DIR_PREFIX)
    ):
        return None
    return f"{parts[0]}/{parts[1]}"


def mirror_marked_runs(url: str, runs_root: Path, only: Iterable[str] | None = None) -> list[Path]:
    """Copy run directories whose marker is in the bucket into `runs_root`; their local paths.

    One listing of the prefix; a directory without a marker there (still
    being uploaded, or of a run that died) is left out. Files come down in
    publication order, the marker last, so a local scan trusts what it finds.
    `only` restricts the copy to these `YYYY-MM/run_id=<id>` directories.
    """
    loc = open_location(url)
    wanted = set(only) if only is not None else None
    groups: dict[str, dict[str, object]] = {}
    for rel, info in list_files(loc).items():
        run_dir = _run_dir_of(rel)
        if run_dir is None or (wanted is not None and run_dir not in wanted):
            continue
        groups.setdefault(run_dir, {})[rel[len(run_dir) + 1 :]] = info
    mirrored = []
    for run_dir, files in sorted(groups.items()):
        if not any(marker in files for marker in _MARKERS):
            continue
        for name in publication_order(files):
            fetch_if_changed(
                loc.child(f"{run_dir}/{name}"),
                files[name],  # type: ignore[arg-type]
                runs_root / run_dir / name,
            )
        mirrored.append(runs_root / run_dir)
    return mirrored


def localize_run_dirs(run_dirs: Iterable[str], runs_root: Path, url: str) -> list[Path]:
    """Run directories named by another machine (`.../YYYY-MM/run_id=<id>`), mirrored here."""
    rels = {}
    for path in run_dirs:
        parts = Path(path).parts
        rel = "/".join(parts[-2:]) if len(parts) >= 2 else ""
        if _run_dir_of(rel + "/x") is None:
            raise StorageError(f"{path}: not a run directory (YYYY-MM/run_id=<id>)")
        rels[path] = rel
    mirror_marked_runs(url, runs_root, only=rels.values())
    return [runs_root / rel for rel in rels.values()]


def pull_catalog(db_path: Path, env: Mapping[str, str] | None = None) -> bool:
    """Start from the catalog snapshot in the bucket (the last writer's state), if there is one.

    Call while holding the catalog write lock. Returns whether a snapshot was pulled.
    """
    url = catalog_url(env)
    if url is None:
        return False
    loc = open_location(url)
    if not exists(loc):
        return False
    get_file(loc, db_path)
    for stale in (Path(f"{db_path}.wal"), Path(f"{db_path}.snapshot")):
        stale.unlink(missing_ok=True)
    return True


def publish_exports(exports_dir: Path, env: Mapping[str, str] | None = None) -> str | None:
    """Upload the golden exports to QUANTBOT_EXPORTS_URL (the status file last), if set."""
    url = exports_url(env)
    if url is None or not exports_dir.is_dir():
        return None
    names = sorted(
        p.name for p in exports_dir.iterdir() if p.is_file() and not p.name.startswith(".")
    )
    loc = open_location(url)
    for name in sorted(names, key=lambda n: n == STATUS_FILE):
        put_file(exports_dir / name, loc.child(name))
    return url
