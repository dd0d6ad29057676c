"""The single catalog writer: a cross-process lock, connecting, read snapshots.

Only one process writes the catalog at a time. Every writer (the
`catalog-sync` command, the Dagster catalog assets) takes an exclusive
`fcntl` lock on `<db>.lock` before it opens the database, and retries
DuckDB's own "Could not set lock on file" for a bounded time in case a
process that does not know the lock file holds the database.

DuckDB refuses even a `read_only` connection while a writer holds the file,
so readers never open the live database: after each committed write the
writer checkpoints and publishes a copy, `<db>.snapshot`, renamed into place
atomically. Readers open the snapshot read-only; nobody ever writes it in
place, so no reader waits on a writer.

Files published by renaming (the snapshot, the golden exports) are written
to `.<name>.<random>.tmp` beside the target while their writer holds an
`flock` on it. A writer killed half-way leaves its temp file unlocked; the
next writer removes such files (`sweep_stale_temps`) before it publishes.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from quantbot_assets.catalog.remote import catalog_url, publish_remote_snapshot
from quantbot_assets.catalog.tables import ensure_tables
from quantbot_assets.errors import DataError

LOCK_TIMEOUT_S = 600.0
DUCKDB_LOCK_RETRY_S = 60.0
_T = TypeVar("_T")


class CatalogLockTimeout(DataError, TimeoutError):
    """Another writer held the catalog for longer than the timeout."""


def lock_path(db_path: Path) -> Path:
    return Path(f"{db_path}.lock")


def snapshot_path(db_path: Path) -> Path:
    return Path(f"{db_path}.snapshot")


def is_duckdb_lock_error(exc: BaseException) -> bool:
    return isinstance(exc, duckdb.Error) and "Could not set lock" in str(exc)


def retry_on_duckdb_lock(action: Callable[[], _T], timeout_s: float) -> _T:
    """Run `action`, retrying with capped exponential backoff on DuckDB lock conflicts."""
    deadline = time.monotonic() + timeout_s
    delay = 0.01
    while True:
        try:
            return action()
        except duckdb.Error as exc:
            if not is_duckdb_lock_error(exc) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


@contextmanager
def catalog_write_lock(db_path: Path, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold the exclusive cross-process writer lock `<db>.lock` for the block."""
    path = lock_path(db_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise CatalogLockTimeout(
                        f"another process has held the catalog writer lock {path} for over {timeout_s:.0f} s"
                    ) from None
                time.sleep(0.02)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def catalog_writer(
    db_path: Path, lock_timeout_s: float = LOCK_TIMEOUT_S
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A writable connection under the writer lock, with the tables created."""
    db_path = Path(db_path)
    with catalog_write_lock(db_path, lock_timeout_s):
        db_path.parent.mkdir(parents=True, exist_ok=True)
        sweep_stale_temps(snapshot_path(db_path))
        conn = retry_on_duckdb_lock(lambda: duckdb.connect(str(db_path)), DUCKDB_LOCK_RETRY_S)
        try:
            ensure_tables(conn)
            yield conn
        finally:
            conn.close()


def database_file(conn: duckdb.DuckDBPyConnection) -> Path | None:
    """The file behind `conn`'s current database (None when in memory)."""
    row = conn.execute(
        "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchone()
    return Path(row[0]) if row and row[0] else None


def snapshot_is_stale(db_file: Path) -> bool:
    """Whether `<db>.snapshot` is missing or older than the database.

    A writer that died between its commit and its publish leaves the commit
    in the WAL (or, once checkpointed, a newer database file).
    """
    try:
        published = snapshot_path(db_file).stat().st_mtime_ns
    except FileNotFoundError:
        return True
    wal = Path(f"{db_file}.wal")
    if wal.exists() and wal.stat().st_size > 0:
        return True
    return db_file.stat().st_mtime_ns > published


def _temp_prefix(target: Path) -> str:
    return f".{target.name}."


def sweep_stale_temps(target: Path) -> list[Path]:
    """Remove temp files of `target` left by killed writers; return what was removed.

    A temp file is stale when nobody holds its lock (the kernel drops a
    dead process's locks). Locked ones belong to a live writer and stay.
    """
    target = Path(target)
    prefix = _temp_prefix(target)
    removed: list[Path] = []
    try:
        entries = list(os.scandir(target.parent))
    except FileNotFoundError:
        return removed
    for entry in entries:
        if not (entry.name.startswith(prefix) and entry.name.endswith(".tmp")):
            continue
        if entry.is_symlink() or not entry.is_file(follow_symlinks=False):
            continue
        try:
            fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # a live writer holds it
        try:
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except FileNotFoundError:
            pass
        finally:
            os.close(fd)
    return removed


@contextmanager
def locked_temp(target: Path) -> Iterator[tuple[int, Path]]:
    """A locked temp file beside `target` (fd, path), renamed onto `target` on success.

    Stale temps of `target` are swept first; on an error the temp is removed.
    """
    target = Path(target)
    sweep_stale_temps(target)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(target), suffix=".tmp", dir=target.parent)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd, Path(tmp)
        os.replace(tmp, target)
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def publish_bytes(target: Path, data: bytes) -> None:
    """Write `data` to `target` through a locked temp file and an atomic rename."""
    with locked_temp(target) as (fd, _tmp):
        os.fchmod(fd, _default_mode())
        with open(fd, "wb", closefd=False) as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())


def publish_parquet(target: Path, table: pa.Table) -> int:
    """Write `table` as zstd Parquet to `target` through a locked temp file; return bytes."""
    with locked_temp(target) as (fd, tmp):
        os.fchmod(fd, _default_mode())
        pq.write_table(table, str(tmp), compression="zstd")
    return Path(target).stat().st_size


def publish_snapshot(conn: duckdb.DuckDBPyConnection) -> Path | None:
    """Checkpoint the writer's database and atomically publish `<db>.snapshot` for readers.

    Call with no open transaction. Returns the snapshot path (None in memory).
    """
    db_file = database_file(conn)
    if db_file is None:
        return None
    conn.execute("CHECKPOINT")  # folds the WAL into the file, so the file alone is complete
    target = snapshot_path(db_file)
    with locked_temp(target) as (fd, tmp):
        # mkstemp makes the file private; readers get the database's own mode.
        os.chmod(tmp, stat.S_IMODE(os.stat(db_file).st_mode))
        with open(fd, "wb", closefd=False) as out, open(db_file, "rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
    url = catalog_url()
    if url is not None:  # readers on other machines: the same snapshot, one object
        publish_remote_snapshot(target, url)
    return target
