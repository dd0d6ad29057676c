"""The earlier system's analysis SQL (docs/compatibility.md) runs unmodified on run directories
but for the path."""

from __future__ import annotations

import duckdb

from quantbot_assets.defs.policies.partitions import ensure_policy_partition
from quantbot_assets.launch import execute_partitions, params_run_config
from quantbot_assets_tests.platform.conftest import TEST_PARAMS

FIND_BEST_CALLERS = """
SELECT
  caller_name,
  COUNT(*) as calls,
  AVG(CASE WHEN hit_2x THEN 1 ELSE 0 END) as hit_rate_2x,
  AVG(peak_multiple) as avg_peak_multiple,
  AVG(dd_bps) as avg_drawdown_bps
FROM read_parquet('{paths}')
GROUP BY caller_name
HAVING calls >= 1
ORDER BY hit_rate_2x DESC
LIMIT 20;
"""

COMPARE_POLICIES = """
WITH policy_a AS (
  SELECT * FROM read_parquet('{a}')
),
policy_b AS (
  SELECT * FROM read_parquet('{b}')
)
SELECT
  'Policy A' as policy,
  AVG(realized_return_bps) as avg_return,
  AVG(CASE WHEN stop_out THEN 1 ELSE 0 END) as stop_out_rate
FROM policy_a
UNION ALL
SELECT
  'Policy B' as policy,
  AVG(realized_return_bps) as avg_return,
  AVG(CASE WHEN stop_out THEN 1 ELSE 0 END) as stop_out_rate
FROM policy_b;
"""

TIME_SERIES = """
SELECT
  DATE_TRUNC('day', TIMESTAMP 'epoch' + alert_ts_ms * INTERVAL '1 millisecond') as day,
  COUNT(*) as calls,
  AVG(CASE WHEN hit_2x THEN 1 ELSE 0 END) as hit_rate_2x,
  AVG(peak_multiple) as avg_peak_multiple
FROM read_parquet('{paths}')
GROUP BY day
ORDER BY day;
"""


def test_seed_queries_run_on_run_directories(defs, instance) -> None:
    config = params_run_config(TEST_PARAMS)
    [truth] = execute_partitions(
        defs, "path_only_backtest", ["2024-01-01"], instance=instance, run_config=config, label="t"
    )
    runs = []
    for policy_id in ("fixed-stop-5pct", "trailing-30pct-after-50pct"):
        ensure_policy_partition(instance, policy_id)
        runs += execute_partitions(
            defs,
            "policy_backtest",
            [f"2024-01-01|{policy_id}"],
            instance=instance,
            run_config=config,
            label="p",
        )
    paths = truth.run_dir / "truth/paths.parquet"
    a, b = (r.run_dir / "policy/trades.parquet" for r in runs)
    con = duckdb.connect()
    callers = con.sql(FIND_BEST_CALLERS.format(paths=paths)).fetchall()
    assert {row[0] for row in callers} == {"alice", "bob"}
    entered = con.sql(f"SELECT count(*) FROM read_parquet('{paths}')").fetchall()[0][0]
    assert sum(row[1] for row in callers) == entered
    compared = con.sql(COMPARE_POLICIES.format(a=a, b=b)).fetchall()
    assert [row[0] for row in compared] == ["Policy A", "Policy B"]
    days = con.sql(TIME_SERIES.format(paths=paths)).fetchall()
    assert [str(row[0].date()) for row in days] == ["2024-01-01"]
