#!/usr/bin/env bash
# `dagster asset materialize`, as a CI job of a user would run it: one day
# partition and one day x policy partition of a tiny dataset, then a look at
# the run directories they wrote.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
.venv/bin/python - "$work" <<'PYEOF'
import sys
from pathlib import Path
from quantbot_assets_tests.platform.tiny_data import write_tiny_data
write_tiny_data(Path(sys.argv[1]) / "data")
PYEOF
cp dagster.yaml policies.yaml "$work/"
export DAGSTER_HOME="$work" QUANTBOT_PROJECT_DIR="$work"
export QUANTBOT_CALLS="$work/data/calls.parquet" QUANTBOT_CANDLES="$work/data/candles.parquet"
cat > "$work/run.yaml" <<'YAML'
resources:
  params:
    config: {horizon_ms: 10800000}
YAML
dagster=.venv/bin/dagster
$dagster asset materialize -m quantbot_assets.definitions --select alerts,paths,errors \
  --partition 2024-01-01 -c "$work/run.yaml" > "$work/truth.log" 2>&1 || { tail -20 "$work/truth.log"; exit 1; }
.venv/bin/quantbot policies sync
$dagster asset materialize -m quantbot_assets.definitions --select trades,summary \
  --partition '2024-01-01|fixed-stop-5pct' -c "$work/run.yaml" > "$work/policy.log" 2>&1 || { tail -20 "$work/policy.log"; exit 1; }
.venv/bin/python - "$work/runs" <<'PYEOF'
import sys
from pathlib import Path
import pandas as pd
from quantbot_assets.rundir import read_manifest
runs = sorted(Path(sys.argv[1]).glob("*/run_id=*"))
assert len(runs) == 2, runs
kinds = {}
for run_dir in runs:
    manifest = read_manifest(run_dir)
    assert manifest.status == "completed" and (run_dir / "_SUCCESS").is_file(), run_dir
    kinds[manifest.run_type] = (run_dir, manifest)
truth_dir, truth = kinds["path-only"]
policy_dir, policy = kinds["policy"]
assert truth.partition_keys["paths"] == ["2024-01-01"], truth.partition_keys
assert policy.partition_keys["trades"] == ["2024-01-01|fixed-stop-5pct"], policy.partition_keys
paths = pd.read_parquet(truth_dir / "truth/paths.parquet")
trades = pd.read_parquet(policy_dir / "policy/trades.parquet")
assert len(paths) > 0 and set(trades["call_id"]) == set(paths["call_id"])
assert not (policy_dir / "truth/paths.parquet").exists()  # the truth run was reused
print(f"dagster asset materialize: {len(paths)} paths, {len(trades)} trades, 2 run directories OK")
PYEOF
