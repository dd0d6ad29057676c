"""Dagster's SQLite event log, with its database connections kept open.

Dagster's `SqliteEventLogStorage` creates a SQLAlchemy engine, opens the database file,
commits and closes it again for every event it stores, twice for an asset event (the run's
database and the cross-run index). A single-run backfill of a month stores a few hundred
events (one planned and one materialization event per partition and asset), so opening and
closing files is most of what Dagster adds to such a run. This subclass keeps one engine per
database file (the index and the most recently used runs' files, at most MAX_OPEN_SHARDS),
each with one pooled connection; everything else (schema, queries, watching for new events)
is Dagster's. SQLite locks per transaction, so open connections do not block other processes.

Selected in `dagster.yaml` (`event_log_storage`); its one setting is Dagster's home
directory, under which the files live where Dagster's default storage puts them
(`history/runs/`), so switching between the two needs no migration.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dagster import StringSource
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import QueuePool

MAX_OPEN_SHARDS = 8


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """SqliteEventLogStorage whose engines (and one connection each) stay open."""

    def __init__(self, base_dir: str, inst_data: Any = None) -> None:
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._engines_lock = threading.Lock()
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

    def wipe(self) -> None:
        self._forget()
        super().wipe()

    def dispose(self) -> None:
        self._forget()
        super().dispose()

    def _forget(self) -> None:
        """Close every open engine (before the files go away, or at the end)."""
        with self._engines_lock:
            while self._engines:
                _, engine = self._engines.popitem()
                engine.dispose()
