"""PooledSqliteEventLogStorage: Dagster's SQLite event log with open connections and a
dynamic-partition cache that never serves a stale list, across storages as across processes."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage
from dagster._serdes import deserialize_value

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


def _check_rows_of_a_three_partition_run(instance: dg.DagsterInstance) -> list[tuple]:
    """Run one asset with a check over 3 partitions in one run; its check-execution rows."""
    import sqlalchemy as sa
    from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable

    parts = dg.StaticPartitionsDefinition(["a", "b", "c"])

    @dg.asset(
        partitions_def=parts,
        check_specs=[dg.AssetCheckSpec("fine", asset="thing", partitions_def=parts)],
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def thing() -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        yield dg.MaterializeResult()
        yield dg.AssetCheckResult(passed=True, check_name="fine")

    job = dg.Definitions(assets=[thing], jobs=[dg.define_asset_job("j", [thing])]).resolve_job_def(
        "j"
    )
    tags = {
        "dagster/asset_partition_range_start": "a",
        "dagster/asset_partition_range_end": "c",
    }
    assert job.execute_in_process(instance=instance, tags=tags).success
    storage = instance.event_log_storage
    assert isinstance(storage, SqlEventLogStorage)
    table = AssetCheckExecutionsTable
    with storage.index_connection() as conn:
        rows = conn.execute(
            sa.select(
                table.c.asset_key,
                table.c.check_name,
                table.c.partition,
                table.c.execution_status,
                table.c.evaluation_event,
            )
        ).fetchall()
    out = []
    for asset_key, name, partition, status, event in rows:
        data = deserialize_value(event, EventLogEntry).get_dagster_event().event_specific_data
        out.append((asset_key, name, partition, status, type(data).__name__))
    return sorted(out, key=repr)


def test_a_checks_planned_rows_are_dagsters_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One row per planned partition, as Dagster's storage writes them, each holding the
    planned event whole."""
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        expected = _check_rows_of_a_three_partition_run(instance)
    home = tmp_path / "ours"
    home.mkdir()
    shutil.copy(PROJECT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    instance = dg.DagsterInstance.get()
    try:
        assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)
        got = _check_rows_of_a_three_partition_run(instance)
        assert got == expected
        planned = [row[2] for row in got if row[4] == "AssetCheckEvaluationPlanned"]
        assert planned == ["a", "b", "c"]
    finally:
        instance.dispose()


def test_a_table_once_present_is_not_asked_for_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = _storage(tmp_path)
    storage.add_dynamic_partitions("policy_id", ["a"])  # creates the index database
    asked = []
    original = PooledSqliteEventLogStorage.__mro__[1].has_table

    def counting(self: SqlEventLogStorage, name: str) -> bool:
        asked.append(name)
        return original(self, name)

    monkeypatch.setattr(PooledSqliteEventLogStorage.__mro__[1], "has_table", counting)
    try:
        for _ in range(5):
            assert storage.has_table("asset_event_tags")
        assert not storage.has_table("no_such_table")
        assert not storage.has_table("no_such_table")  # an absent table is asked again
        assert asked == ["asset_event_tags", "no_such_table", "no_such_table"]
    finally:
        storage.dispose()
