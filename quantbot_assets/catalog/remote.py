"""The catalog's read snapshot in object storage, for readers on other machines.

The single writer (the catalog assets' run, or `catalog-sync`) publishes
`<db>.snapshot` on its own disk after each committed write (`writer.py`);
when `QUANTBOT_CATALOG_URL` names an object (`s3://bucket/catalog/backtest_catalog.duckdb`)
it also uploads that snapshot there as one object. An object store replaces
an object whole, so a reader anywhere downloads either the previous or the
new snapshot, never half of one, and never waits on the writer: the writer's
own database file is never read remotely.

`quantbot backtest catalog-query --duckdb s3://...` (or with
`QUANTBOT_CATALOG_URL` set) downloads the snapshot to a temporary file and
queries it read-only.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from quantbot_assets.storage import StorageError, get_file, is_url, open_location, put_file

CATALOG_URL_ENV = "QUANTBOT_CATALOG_URL"


def catalog_url(env: Mapping[str, str] | None = None) -> str | None:
    """The URL the catalog snapshot is published to, if any (`QUANTBOT_CATALOG_URL`)."""
    env = os.environ if env is None else env
    value = env.get(CATALOG_URL_ENV, "").strip()
    if not value:
        return None
    if not is_url(value):
        raise StorageError(
            f"{CATALOG_URL_ENV}={value!r} is not a URL (e.g. s3://bucket/catalog.duckdb)"
        )
    return value


def publish_remote_snapshot(snapshot: Path, url: str) -> None:
    """Upload the published snapshot file as the object at `url` (written whole)."""
    try:
        put_file(snapshot, open_location(url))
    except StorageError:
        # The local snapshot is marked stale, so the next sync uploads again.
        os.utime(snapshot, ns=(0, 0))
        raise


@contextmanager
def fetched_snapshot(url: str) -> Iterator[Path]:
    """The snapshot at `url`, downloaded to a private temporary file for the block."""
    tmp = Path(tempfile.mkdtemp(prefix="quantbot-catalog-"))
    try:
        yield get_file(open_location(url), tmp / "backtest_catalog.duckdb")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
