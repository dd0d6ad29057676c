"""Reproducible runs: two runs of the same code, configuration and data write the same
artifacts (every cell but run_id equal, rows in the same order), and their manifests say so
with equal `config_hash` and `data_fingerprint`; other data gives another fingerprint."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq

from quantbot_assets.definitions import build_definitions
from quantbot_assets.defs.policies.partitions import ensure_policy_partition
from quantbot_assets.launch import execute_range, params_run_config
from quantbot_assets.rundir import read_manifest
from quantbot_assets.schemas import ARTIFACT_FILES
from quantbot_assets.settings import Settings
from quantbot_assets_tests.platform.conftest import TEST_PARAMS

CONFIG = params_run_config(TEST_PARAMS)
POLICY = "fixed-stop-5pct"


def run(defs: dg.Definitions, instance: dg.DagsterInstance, job: str, first: str, last: str):
    outcome = execute_range(
        defs, job, first, last, instance=instance, run_config=CONFIG, label="repro"
    )
    assert outcome.success, outcome.error
    return outcome


def same_artifacts(a: Path, b: Path, names: list[str]) -> None:
    for name in names:
        left = pq.read_table(a / ARTIFACT_FILES[name]).to_pandas()
        right = pq.read_table(b / ARTIFACT_FILES[name]).to_pandas()
        assert len(left) > 0, name
        if "run_id" in left:  # alerts have none
            assert set(left.pop("run_id")) == {a.name.removeprefix("run_id=")}
            assert set(right.pop("run_id")) == {b.name.removeprefix("run_id=")}
        # every cell but run_id, row for row (no sorting: the order must be the same too)
        pd.testing.assert_frame_equal(left, right, check_exact=True)


def test_two_runs_of_the_same_config_and_data_write_the_same_artifacts(
    defs: dg.Definitions, instance: dg.DagsterInstance
) -> None:
    first = run(defs, instance, "path_only_backtest", "2024-01-01", "2024-01-02")
    second = run(defs, instance, "path_only_backtest", "2024-01-01", "2024-01-02")
    a, b = read_manifest(first.run_dir), read_manifest(second.run_dir)
    assert a.run_id != b.run_id
    assert a.data_fingerprint and a.calls_hash and a.candles_hash
    assert (a.git_commit, a.config_hash, a.data_fingerprint) == (
        b.git_commit,
        b.config_hash,
        b.data_fingerprint,
    )
    same_artifacts(first.run_dir, second.run_dir, ["alerts", "paths", "errors"])

    ensure_policy_partition(instance, POLICY)
    keys = (f"2024-01-01|{POLICY}", f"2024-01-02|{POLICY}")
    p1 = run(defs, instance, "policy_backtest", *keys)
    p2 = run(defs, instance, "policy_backtest", *keys)
    m1, m2 = read_manifest(p1.run_dir), read_manifest(p2.run_dir)
    assert m1.config_hash == m2.config_hash and m1.data_fingerprint == m2.data_fingerprint
    # the policy runs read the same calls and bars as the path-only runs
    assert (m1.calls_hash, m1.candles_hash) == (a.calls_hash, a.candles_hash)
    same_artifacts(p1.run_dir, p2.run_dir, ["trades", "summary"])
    summary = pd.read_parquet(p1.run_dir / ARTIFACT_FILES["summary"])
    assert summary["median_return_lo_bps"].notna().any()  # the intervals are reproduced too


def test_a_policy_run_of_fewer_days_hashes_its_own_windows(
    defs: dg.Definitions, instance: dg.DagsterInstance
) -> None:
    """The truth layer records its fingerprint's candles part (`candles_digest`) for its own
    calls; a policy run of all its days takes it, a run of some of them hashes the bars it
    reads, and gets what a path-only run of those days records."""
    both = read_manifest(
        run(defs, instance, "path_only_backtest", "2024-01-01", "2024-01-02").run_dir
    )
    ensure_policy_partition(instance, POLICY)
    one = f"2024-01-02|{POLICY}"
    part = read_manifest(run(defs, instance, "policy_backtest", one, one).run_dir)
    assert part.truth_sources  # the truth layer was reused, not computed
    alone = read_manifest(
        run(defs, instance, "path_only_backtest", "2024-01-02", "2024-01-02").run_dir
    )
    assert part.candles_hash == alone.candles_hash != both.candles_hash
    record = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("paths"), asset_partitions=["2024-01-02"]),
        limit=1,
    ).records[0]
    assert record.asset_materialization is not None
    digest = record.asset_materialization.metadata["candles_digest"]
    assert str(getattr(digest, "value", digest)).endswith(":" + alone.candles_hash)


def test_other_candles_give_another_data_fingerprint(
    settings: Settings, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    defs = build_definitions(settings)
    base = read_manifest(
        run(defs, instance, "path_only_backtest", "2024-01-01", "2024-01-01").run_dir
    )
    candles = pd.read_parquet(settings.candles_path)
    candles.loc[candles.index[len(candles) // 3], "high"] *= 1.5  # one bar of one window
    changed = tmp_path / "changed.parquet"
    candles.to_parquet(changed)
    other_defs = build_definitions(dataclasses.replace(settings, candles_path=changed))
    other = read_manifest(
        run(other_defs, instance, "path_only_backtest", "2024-01-01", "2024-01-01").run_dir
    )
    assert other.calls_hash == base.calls_hash
    assert other.candles_hash != base.candles_hash
    assert other.data_fingerprint != base.data_fingerprint
    assert other.config_hash == base.config_hash
