"""The cluster profile at work: 1 vs 2 workers, and what S3 costs against a local disk.

    python bench/cluster_bench.py            # the month x 6 policies on 1 and 2 workers (~12 min)
    python bench/cluster_bench.py --quick    # 3 days x 2 policies (a smoke run, ~4 min)

1. Throughput. For each worker count, a fresh local cluster
   (`deploy/local-cluster.sh up` with QUANTBOT_WORKERS=N, its own state
   directory and free ports, `purge`d afterwards), the sample data uploaded to
   its bucket, and one backfill of trades,summary over --days days x the
   first --policies policies of the registry at 5m, launched as the UI's
   "Materialize" dialog does (GraphQL `launchPartitionBackfill`). Printed:
   the runs it made, the wall time from the launch until every run finished,
   the time from the first run's start to the last run's end (without the
   backfill daemon's pick-up, which ticks every 30 s), and the throughput in
   day x policy partitions per second; then the ratio 2 workers / 1 worker.
2. Storage overhead of one policy day. `quantbot backtest policy` of one day
   x fixed-stop-5pct in a fresh process on the laptop profile (SQLite
   instance in a temp DAGSTER_HOME), three ways: calls, candles and run
   directories on local disk; the same with calls and candles at s3:// URLs
   and QUANTBOT_RUNS_URL set (moto's S3 server on 127.0.0.1), cold (the
   mirror is empty: the candle store is downloaded) and warm (the mirror is
   current: one listing per source, and the run directory uploaded). Each
   is run --repeat times; the median is printed.

Figures are printed, never asserted. Every server started here binds
127.0.0.1 and is stopped at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))  # the e2e helpers live in the tests package

from quantbot_assets.policy_registry import load_registry  # noqa: E402
from quantbot_assets.sample_data import generate_sample_data  # noqa: E402
from quantbot_assets_tests.e2e.dagster_api import DagsterGraphQL  # noqa: E402

SCRIPT = PROJECT / "deploy" / "local-cluster.sh"
PY = Path(sys.executable)
RUN_TIMES = """
query RunTimes($ids: [String!]) {
  runsOrError(filter: {runIds: $ids}) {
    ... on Runs { results { id status startTime endTime tags { key value } } }
  }
}
"""
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def read_env(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = value
    return env


def sample(data_dir: Path, days: int) -> tuple[Path, Path]:
    """The sample calls (as Parquet) and candle store for `days` days from 2024-01-01."""
    if not (data_dir / "candles").is_dir() or not (data_dir / "calls.parquet").is_file():
        import duckdb

        data = generate_sample_data(data_dir, days=days)
        with duckdb.connect(str(data.alerts_db), read_only=True) as con:
            con.sql("SELECT * FROM alerts").write_parquet(str(data_dir / "calls.parquet"))
    return data_dir / "calls.parquet", data_dir / "candles"


def throughput(workers: int, days: int, policies: list[str], calls: Path, candles: Path) -> dict:
    state = Path(tempfile.mkdtemp(prefix=f"quantbot-bench-cluster{workers}-"))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("QUANTBOT_", "DAGSTER_"))},
        "QUANTBOT_CLUSTER_DIR": str(state),
        "QUANTBOT_WORKERS": str(workers),
        "QUANTBOT_PG_PORT": str(free_port()),
        "QUANTBOT_REDIS_PORT": str(free_port()),
        "QUANTBOT_S3_PORT": str(free_port()),
        "QUANTBOT_UI_PORT": str(free_port()),
        "QUANTBOT_PYTHON": str(PY),
    }
    try:
        began = time.monotonic()
        subprocess.run(["bash", str(SCRIPT), "up"], env=env, check=True, capture_output=True)
        up_s = time.monotonic() - began
        subprocess.run(
            ["bash", str(SCRIPT), "upload", str(calls), str(candles)],
            env=env,
            check=True,
            capture_output=True,
        )
        api = DagsterGraphQL(read_env(state / "cluster.env")["QUANTBOT_UI_URL"])
        deadline = time.monotonic() + 120
        while not set(policies) <= set(api.policy_ids()):
            if time.monotonic() > deadline:
                raise RuntimeError("policy partitions never appeared")
            time.sleep(2)
        first = date(2024, 1, 1)
        keys = [f"{first + timedelta(days=d)}|{policy}" for d in range(days) for policy in policies]
        launched = time.monotonic()
        backfill = api.launch_backfill(
            ["trades", "summary"], keys, {"resources": {"params": {"config": {"interval": "5m"}}}}
        )
        deadline = time.monotonic() + 3600
        while True:
            if time.monotonic() > deadline:
                raise RuntimeError(f"backfill {backfill} did not finish within an hour")
            result = api.backfill(backfill)
            done = result.runs and all(r["status"] in FINISHED for r in result.runs)
            if done and result.status != "REQUESTED":
                break
            time.sleep(2)
        wall = time.monotonic() - launched
        runs = api.query(RUN_TIMES, {"ids": [r["id"] for r in result.runs]})["runsOrError"][
            "results"
        ]
        span = max(r["endTime"] for r in runs) - min(r["startTime"] for r in runs)
        per_worker: dict[str, int] = {}
        for log in sorted((state / "logs").glob("worker*.log")):
            per_worker[log.stem] = log.read_text().count("Task execute_job[")
        return {
            "workers": workers,
            "up_s": up_s,
            "runs": len(runs),
            "failed": sum(r["status"] != "SUCCESS" for r in runs),
            "wall_s": wall,
            "span_s": span,
            "partitions": len(keys),
            "per_worker": per_worker,
        }
    finally:
        subprocess.run(["bash", str(SCRIPT), "purge"], env=env, capture_output=True)
        shutil.rmtree(state, ignore_errors=True)


class MotoServer:
    """moto's S3 server on 127.0.0.1, as a process of its own group."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [str(PY.with_name("moto_server")), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        import urllib.request

        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=1)
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)


def policy_day(calls: Path, candles: Path, repeat: int) -> dict[str, float]:
    """Seconds of `backtest policy` for one day: local disk, S3 cold, S3 warm (medians)."""
    work = Path(tempfile.mkdtemp(prefix="quantbot-bench-s3-"))
    moto = MotoServer()
    try:
        s3 = {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_REGION": "us-east-1",
            "QUANTBOT_S3_ENDPOINT": f"http://127.0.0.1:{moto.port}",
        }
        os.environ.update(s3)
        from quantbot_assets.storage import create_bucket, open_location, publish_tree, put_file

        create_bucket("s3://bench")
        put_file(calls, open_location("s3://bench/data/calls.parquet"))
        publish_tree(candles, open_location("s3://bench/data/candles"))

        base = {k: v for k, v in os.environ.items() if not k.startswith(("QUANTBOT_", "DAGSTER_"))}
        quantbot = str(PY.with_name("quantbot"))
        argv = [quantbot, "backtest", "policy", "--policy-id", "fixed-stop-5pct"]
        argv += ["--from", "2024-01-03", "--to", "2024-01-03", "--interval", "5m"]

        def once(label: str, i: int, extra: dict[str, str], cache: Path | None) -> float:
            home = work / f"{label}-{i}"
            home.mkdir()
            shutil.copy(PROJECT / "dagster.yaml", home / "dagster.yaml")
            env = {
                **base,
                "DAGSTER_HOME": str(home),
                "QUANTBOT_DATA_DIR": str(home / "data"),
                "QUANTBOT_RUNS_DIR": str(home / "runs"),
                "QUANTBOT_CACHE_DIR": str(cache or home / "cache"),
                **extra,
            }
            began = time.monotonic()
            subprocess.run(argv, env=env, check=True, capture_output=True, cwd=home)
            return time.monotonic() - began

        local = {"QUANTBOT_CALLS": str(calls), "QUANTBOT_CANDLES": str(candles)}
        remote = {
            **s3,
            "QUANTBOT_CALLS": "s3://bench/data/calls.parquet",
            "QUANTBOT_CANDLES": "s3://bench/data/candles",
            "QUANTBOT_RUNS_URL": "s3://bench/runs",
        }
        shared_cache = work / "warm-cache"
        once("warmup", 0, local, None)  # numba's and the OS's caches, for every variant alike
        times: dict[str, list[float]] = {"local disk": [], "S3 cold": [], "S3 warm": []}
        for i in range(repeat):
            times["local disk"].append(once("local", i, local, None))
            times["S3 cold"].append(once("cold", i, remote, None))
            times["S3 warm"].append(once("warm", i, remote, shared_cache))
        # The first warm run filled the shared mirror: it was a cold one.
        times["S3 warm"] = times["S3 warm"][1:] or times["S3 warm"]
        return {label: statistics.median(values) for label, values in times.items()}
    finally:
        moto.stop()
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 days x 2 policies, repeat 1")
    parser.add_argument("--days", type=int, default=31)
    parser.add_argument("--policies", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--data-dir", type=Path, default=None, help="sample data (generated)")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-storage", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.days, args.policies, args.repeat = 3, 2, 2
    data_dir = args.data_dir or Path(tempfile.gettempdir()) / f"quantbot-bench-data-{args.days}d"
    calls, candles = sample(data_dir, max(args.days, 3))
    policies = list(load_registry(PROJECT / "policies.yaml"))[: args.policies]
    print(f"data: {calls}, {candles}; {args.days} days x {len(policies)} policies at 5m")

    if not args.skip_throughput:
        results: list[dict[str, Any]] = []
        for workers in (1, 2):
            r = throughput(workers, args.days, policies, calls, candles)
            results.append(r)
            print(
                f"{workers} worker(s): {r['runs']} runs ({r['failed']} failed) in {r['wall_s']:.1f} s"
                f" from launch, {r['span_s']:.1f} s first start -> last end;"
                f" {r['partitions'] / r['span_s']:.2f} partitions/s; runs per worker"
                f" {r['per_worker']}; cluster up in {r['up_s']:.1f} s",
                flush=True,
            )
        one, two = results
        print(
            f"throughput 2 workers / 1 worker: {one['span_s'] / two['span_s']:.2f}x"
            f" (first start -> last end), {one['wall_s'] / two['wall_s']:.2f}x (from launch)"
        )
    if not args.skip_storage:
        medians = policy_day(calls, candles, args.repeat)
        local = medians["local disk"]
        for label, seconds in medians.items():
            print(
                f"one policy day ({label}): {seconds:.2f} s"
                + ("" if label == "local disk" else f" ({seconds - local:+.2f} s vs local disk)")
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
