"""The local cluster end to end: PostgreSQL, Redis, an S3 bucket, webserver, daemon, two workers.

A backfill of 3 days x 2 policies of a tiny dataset in the bucket, launched as
the UI launches it, runs on the Celery workers; one worker is killed with
SIGKILL while it runs a run. The backfill still completes (the dead worker's
run is failed and launched again on the other worker), every successful run
directory is in the bucket with its marker, the killed run has nothing there,
and `catalog-query`, run from a directory that holds nothing of the
cluster's, lists each successful run once and nothing else.

Skipped, with the reason, only when PostgreSQL or Redis cannot be installed
(not root, no apt-get); any other failure to start is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from quantbot_assets.sample_data import generate_sample_data
from quantbot_assets.storage import list_files, open_location
from quantbot_assets_tests.e2e.dagster_api import DagsterGraphQL

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "local-cluster.sh"
POLICIES = ("fixed-stop-5pct", "trailing-30pct-after-50pct")
DAYS = ("2024-01-01", "2024-01-02", "2024-01-03")
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cluster_env(state: Path) -> dict[str, str]:
    env = {}
    for line in (state / "cluster.env").read_text().splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = value
    return env


def _received(log: Path, offset: int) -> bool:
    with open(log) as f:
        f.seek(offset)
        return "Task execute_job[" in f.read()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    if sys.platform != "linux":
        pytest.skip("the local cluster script targets Linux (Debian packages)")
    state = tmp_path_factory.mktemp("cluster")
    env = {
        **os.environ,
        "QUANTBOT_CLUSTER_DIR": str(state),
        "QUANTBOT_PG_PORT": str(_free_port()),
        "QUANTBOT_REDIS_PORT": str(_free_port()),
        "QUANTBOT_S3_PORT": str(_free_port()),
        "QUANTBOT_UI_PORT": str(_free_port()),
        "QUANTBOT_PYTHON": sys.executable,
    }
    for name in ("DAGSTER_HOME", "QUANTBOT_CATALOG", "QUANTBOT_RUNS_DIR", "QUANTBOT_DATA_DIR"):
        env.pop(name, None)
    began = time.monotonic()
    up = subprocess.run(
        ["bash", str(SCRIPT), "up"], env=env, capture_output=True, text=True, timeout=240
    )
    try:
        if up.returncode != 0:
            reason = up.stderr.strip().splitlines()[-1] if up.stderr.strip() else "no output"
            if "missing" in reason or "apt-get install" in reason:
                pytest.skip(f"PostgreSQL/Redis cannot be installed here: {reason}")
            pytest.fail(f"local-cluster.sh up failed: {up.stderr[-2000:]}")
        print(f"cluster up in {time.monotonic() - began:.1f} s")
        yield state, env
    finally:
        subprocess.run(["bash", str(SCRIPT), "purge"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(state, ignore_errors=True)


def test_backfill_on_two_workers_survives_a_killed_worker(cluster, tmp_path, monkeypatch):
    state, script_env = cluster
    client = _cluster_env(state)
    for name, value in client.items():  # this process reads the bucket as a client
        monkeypatch.setenv(name, value)
    started = time.monotonic()

    def phase(what: str) -> None:  # shown with a failure, and with -s
        print(f"{time.monotonic() - started:6.1f} s  {what}", flush=True)

    data = generate_sample_data(tmp_path / "data", days=4, calls_per_day=30, n_callers=4)
    import duckdb

    with duckdb.connect(str(data.alerts_db), read_only=True) as con:
        con.sql("SELECT * FROM alerts").write_parquet(str(tmp_path / "calls.parquet"))
    subprocess.run(
        ["bash", str(SCRIPT), "upload", str(tmp_path / "calls.parquet"), str(data.candles_dir)],
        env=script_env,
        check=True,
        capture_output=True,
        timeout=60,
    )

    phase("data uploaded")
    api = DagsterGraphQL(client["QUANTBOT_UI_URL"])
    deadline = time.monotonic() + 90
    while not set(POLICIES) <= set(api.policy_ids()):
        assert time.monotonic() < deadline, "policy partitions never appeared"
        time.sleep(2)
    phase("policy partitions known")
    logs = {w: state / "logs" / f"{w}.log" for w in ("worker1", "worker2")}
    offsets = {w: log.stat().st_size for w, log in logs.items()}
    backfill = api.launch_backfill(
        ["trades", "summary"],
        [f"{day}|{policy}" for day in DAYS for policy in POLICIES],
        {"resources": {"params": {"config": {"interval": "15m"}}}},
    )

    # SIGKILL the first worker found running a run: the run has started and tagged
    # itself with its process (the worker: a solo pool runs the run in its own process).
    pids = {int((state / "pids" / w).read_text()): w for w in logs}
    killed = None
    deadline = time.monotonic() + 150
    while killed is None:
        assert time.monotonic() < deadline, "no worker started a run"
        for run in api.backfill(backfill).runs:
            tags = {t["key"]: t["value"] for t in run["tags"]}
            pid = int(tags.get("quantbot/pid", "0"))
            if run["status"] == "STARTED" and pid in pids:
                os.kill(pid, signal.SIGKILL)
                killed = pids[pid]
                phase(f"{killed} killed while running {run['id']}")
                break
        time.sleep(0.5)

    deadline = time.monotonic() + 240
    while True:
        result = api.backfill(backfill)
        runs_done = result.runs and all(r["status"] in FINISHED for r in result.runs)
        if result.status != "REQUESTED" and runs_done:
            break
        assert time.monotonic() < deadline, f"backfill did not finish: {result}"
        time.sleep(3)
    phase(f"backfill {result.status}")
    assert result.status == "COMPLETED_SUCCESS", result
    tags = {r["id"]: {t["key"]: t["value"] for t in r["tags"]} for r in result.runs}
    failed = [r["id"] for r in result.runs if r["status"] == "FAILURE"]
    succeeded = [r["id"] for r in result.runs if r["status"] == "SUCCESS"]
    assert len(failed) == 1, result.runs  # the killed worker's run...
    retries = [rid for rid in succeeded if tags[rid].get("dagster/parent_run_id") == failed[0]]
    assert len(retries) == 1, tags  # ...launched again, and done

    # Both workers ran runs: the killed one, and the one that finished the backfill.
    survivor = "worker2" if killed == "worker1" else "worker1"
    assert _received(logs[survivor], offsets[survivor])

    # The bucket: every successful run with run.json and _SUCCESS; nothing of the killed one.
    files = list_files(open_location(client["QUANTBOT_RUNS_URL"]))
    for run_id in succeeded:
        names = {k.split("/", 2)[2] for k in files if k.split("/")[1] == f"run_id={run_id}"}
        assert {"run.json", "_SUCCESS", "policy/trades.parquet"} <= names, (run_id, names)
    assert not [k for k in files if f"run_id={failed[0]}" in k]

    # The catalog, from a process that shares no directory with the cluster.
    reader = tmp_path / "reader"
    reader.mkdir()
    reader_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("QUANTBOT_", "DAGSTER_"))},
        **client,
        "QUANTBOT_PROJECT_DIR": str(reader),
        "DAGSTER_HOME": str(reader),
    }
    quantbot = str(Path(sys.executable).with_name("quantbot"))
    deadline = time.monotonic() + 120
    while True:
        query = subprocess.run(
            [quantbot, "backtest", "catalog-query", "--json", "--limit", "100"],
            env=reader_env,
            cwd=reader,
            capture_output=True,
            text=True,
            timeout=60,
        )
        rows = json.loads(query.stdout) if query.returncode == 0 else []
        if {r["run_id"] for r in rows} >= set(succeeded):
            break
        assert time.monotonic() < deadline, f"runs never catalogued: {query.stderr or rows}"
        time.sleep(3)
    phase("catalogued")
    ids = [r["run_id"] for r in rows]
    assert len(ids) == len(set(ids))  # nothing twice
    assert failed[0] not in ids  # the killed run is not catalogued, least of all as complete
    assert {r["status"] for r in rows if r["run_id"] in succeeded} == {"completed"}
    assert sorted(os.listdir(reader)) == []  # the reader kept nothing of the cluster's
