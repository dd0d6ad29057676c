"""PooledSqliteEventLogStorage: Dagster's SQLite event log with open connections and a
dynamic-partition cache that never serves a stale list, across storages as across processes."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage

from quantbot_assets.event_log import PooledSqliteEventLogStorage

PROJECT = Path(__file__).resolve().parents[2]


def _storage(home: Path) -> PooledSqliteEventLogStorage:
    return PooledSqliteEventLogStorage.from_config_value(None, {"dagster_home": str(home)})


def test_the_project_instance_uses_it_in_dagsters_usual_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(PROJECT / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    instance = dg.DagsterInstance.get()
    try:
        assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)
        instance.add_dynamic_partitions("policy_id", ["a"])
        assert (tmp_path / "history" / "runs" / "index.db").exists()
        assert list(instance.get_dynamic_partitions("policy_id")) == ["a"]
    finally:
        instance.dispose()


def test_dynamic_partitions_seen_by_another_storage_at_once(tmp_path: Path) -> None:
    one, two = _storage(tmp_path), _storage(tmp_path)
    one.add_dynamic_partitions("policy_id", ["a", "b"])
    assert two.get_dynamic_partitions("policy_id") == ["a", "b"]
    assert two.has_dynamic_partition("policy_id", "b")
    assert not two.has_dynamic_partition("policy_id", "c")
    # the other storage (another process in real use) adds and deletes: never stale here
    one.add_dynamic_partitions("policy_id", ["c"])
    assert two.has_dynamic_partition("policy_id", "c")
    assert two.get_dynamic_partitions("policy_id") == ["a", "b", "c"]
    one.delete_dynamic_partition("policy_id", "a")
    assert not two.has_dynamic_partition("policy_id", "a")
    assert two.get_dynamic_partitions("policy_id") == ["b", "c"]
    # and its own writes
    two.add_dynamic_partitions("policy_id", ["d"])
    assert two.get_dynamic_partitions("policy_id") == ["b", "c", "d"]
    assert one.get_dynamic_partitions("other") == []
    one.dispose()
    two.dispose()


def test_repeated_reads_are_served_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = _storage(tmp_path)
    storage.add_dynamic_partitions("policy_id", ["a"])
    assert storage.get_dynamic_partitions("policy_id") == ["a"]
    queries = []
    original = SqlEventLogStorage.get_dynamic_partitions

    def counting(self: SqlEventLogStorage, name: str) -> list[str]:
        queries.append(name)
        return list(original(self, name))

    monkeypatch.setattr(SqlEventLogStorage, "get_dynamic_partitions", counting)
    for _ in range(50):
        assert storage.has_dynamic_partition("policy_id", "a")
    assert queries == []
    _storage(tmp_path).add_dynamic_partitions("policy_id", ["b"])  # another writer
    assert storage.has_dynamic_partition("policy_id", "b")
    assert queries == ["policy_id"]
    storage.dispose()


def test_its_connections_commit_without_syncing_each_event(tmp_path: Path) -> None:
    """WAL files (as Dagster creates them), with `synchronous=NORMAL` on our connections."""
    import sqlalchemy as sa

    storage = _storage(tmp_path)
    storage.add_dynamic_partitions("policy_id", ["a"])
    try:
        with storage.index_connection() as conn:
            assert conn.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(sa.text("PRAGMA synchronous")).scalar() == 1  # NORMAL
        with storage.run_connection("some-run") as conn:
            assert conn.execute(sa.text("PRAGMA synchronous")).scalar() == 1
    finally:
        storage.dispose()
