"""Dagster's SQLite event log, with its database connections kept open.

Dagster's `SqliteEventLogStorage` creates a SQLAlchemy engine, opens the database file,
commits and closes it again for every event it stores, twice for an asset event (the run's
database and the cross-run index). A single-run backfill of a month stores a few hundred
events (one planned and one materialization event per partition and asset), so opening and
closing files is most of what Dagster adds to such a run. This subclass keeps one engine per
database file (the index and the most recently used runs' files, at most MAX_OPEN_SHARDS),
each with one pooled connection; everything else (schema, queries, watching for new events)
is Dagster's. SQLite locks per transaction, so open connections do not block other processes.

It also remembers the dynamic partitions (the policy ids) it last read, for as long as the
index database is unchanged: SQLite's `PRAGMA data_version`, read on a connection of its
own, changes whenever any connection (of this or another process) commits to that file, so
a stale list is never served. A run's step asks for them once per partition it attaches
metadata to (Dagster validates each key), about 1,500 times in a month x 25 policies run.

Two more of Dagster's per-event costs are paid once here. `has_table` (asked before every
asset event's tags are stored) opens a new engine and connection each time; a table, once
there, stays, so a positive answer is remembered. And a check's planned event of a run of
many partitions is stored as one row per partition, each with the event serialized again
(775 serializations of a 775-key event in a month x 25 policies run); here it is
serialized once for all its rows, which hold the same text either way.

Selected in `dagster.yaml` (`event_log_storage`); its one setting is Dagster's home
directory, under which the files live where Dagster's default storage puts them
(`history/runs/`), so switching between the two needs no migration.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from dagster import StringSource
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationPlanned,
)
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from dagster._serdes import serialize_value
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import QueuePool

MAX_OPEN_SHARDS = 8


def _relaxed_sync(dbapi_connection: Any, _record: Any) -> None:
    """`synchronous=NORMAL` on every connection of ours: no fsync per commit in WAL mode.

    Dagster creates these files in WAL mode, where SQLite's default (`FULL`) syncs the log
    at every commit: a few milliseconds each, and a month's run commits several hundred
    events. With `NORMAL` the log is synced at checkpoints; a commit survives a crash of
    the process, and the database stays consistent after a power loss, which may roll
    back the last transactions (a run's last events; the run directory's `_SUCCESS`
    marker, not the event log, says whether a run's artifacts are complete).
    """
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """SqliteEventLogStorage whose engines (and one connection each) stay open."""

    def __init__(self, base_dir: str, inst_data: Any = None) -> None:
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._engines_lock = threading.Lock()
        self._partitions: dict[str, tuple[int, list[str], frozenset[str]]] = {}
        self._version_conn: sqlite3.Connection | None = None
        self._version_lock = threading.Lock()
        self._tables: set[str] = set()
        super().__init__(base_dir, inst_data=inst_data)

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return {"dagster_home": StringSource}

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: Any, config_value: dict[str, Any]
    ) -> PooledSqliteEventLogStorage:
        base_dir = os.path.join(config_value["dagster_home"], "history", "runs", "")
        return cls(base_dir, inst_data=inst_data)

    def _engine(self, shard: str) -> Engine:
        with self._engines_lock:
            engine = self._engines.get(shard)
            if engine is not None:
                self._engines.move_to_end(shard)
                return engine
            engine = create_engine(
                self.conn_string_for_shard(shard),
                poolclass=QueuePool,
                pool_size=1,
                max_overflow=4,
                pool_pre_ping=False,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
            )
            event.listen(engine, "connect", _relaxed_sync)
            self._engines[shard] = engine
            while len(self._engines) > MAX_OPEN_SHARDS:
                _, old = self._engines.popitem(last=False)
                old.dispose()
            return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:  # type: ignore[override]
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def has_table(self, table_name: str) -> bool:
        if table_name in self._tables:
            return True
        present = super().has_table(table_name)
        if present:
            self._tables.add(table_name)
        return present

    def _store_asset_check_evaluation_planned(
        self, event: EventLogEntry, event_id: int | None
    ) -> None:
        """Dagster's rows (one per planned partition), with the event serialized once."""
        planned = event.dagster_event.event_specific_data if event.dagster_event else None
        if not isinstance(planned, AssetCheckEvaluationPlanned) or not planned.partitions_subset:
            super()._store_asset_check_evaluation_planned(event, event_id)
            return
        serialized = serialize_value(event)
        timestamp = self._event_insert_timestamp(event)
        with self.index_connection() as conn:
            conn.execute(
                AssetCheckExecutionsTable.insert().values(
                    [
                        dict(
                            asset_key=planned.asset_key.to_string(),
                            check_name=planned.check_name,
                            partition=partition_key,
                            run_id=event.run_id,
                            execution_status=AssetCheckExecutionRecordStatus.PLANNED.value,
                            evaluation_event=serialized,
                            evaluation_event_timestamp=timestamp,
                            evaluation_event_storage_id=event_id,
                        )
                        for partition_key in planned.partitions_subset.get_partition_keys()
                    ]
                )
            )

    def _index_version(self) -> int | None:
        """The index database's `data_version` (None when it cannot be read: no caching)."""
        with self._version_lock:
            try:
                if self._version_conn is None:
                    path = os.path.join(self._base_dir, f"{INDEX_SHARD_NAME}.db")
                    if not os.path.exists(path):
                        return None
                    self._version_conn = sqlite3.connect(path, check_same_thread=False)
                return int(self._version_conn.execute("PRAGMA data_version").fetchone()[0])
            except sqlite3.Error:
                return None

    def _cached_partitions(self, name: str) -> tuple[list[str], frozenset[str]]:
        version = self._index_version()
        hit = self._partitions.get(name)
        if version is not None and hit is not None and hit[0] == version:
            return hit[1], hit[2]
        keys = list(super().get_dynamic_partitions(name))
        if version is not None:  # read before the query: a newer write shows as a miss
            self._partitions[name] = (version, keys, frozenset(keys))
        return keys, frozenset(keys)

    def get_dynamic_partitions(self, partitions_def_name: str) -> Sequence[str]:
        return list(self._cached_partitions(partitions_def_name)[0])

    def has_dynamic_partition(self, partitions_def_name: str, partition_key: str) -> bool:
        return partition_key in self._cached_partitions(partitions_def_name)[1]

    def add_dynamic_partitions(
        self, partitions_def_name: str, partition_keys: Sequence[str]
    ) -> None:
        self._partitions.clear()
        super().add_dynamic_partitions(partitions_def_name, partition_keys)
        self._partitions.clear()

    def delete_dynamic_partition(self, partitions_def_name: str, partition_key: str) -> None:
        self._partitions.clear()
        super().delete_dynamic_partition(partitions_def_name, partition_key)
        self._partitions.clear()

    def wipe(self) -> None:
        self._forget()
        super().wipe()

    def dispose(self) -> None:
        self._forget()
        super().dispose()

    def _forget(self) -> None:
        """Close every open engine (before the files go away, or at the end)."""
        self._partitions.clear()
        self._tables.clear()
        with self._version_lock:
            if self._version_conn is not None:
                self._version_conn.close()
                self._version_conn = None
        with self._engines_lock:
            while self._engines:
                _, engine = self._engines.popitem()
                engine.dispose()
