"""End-to-end timings through Dagster, in process, on the sample data.

Prints: Dagster's own start-up (import + definitions + instance) and per-run
overhead (a no-op asset run), one day x one policy end to end (the path-only
run and the policy run of 2024-01-03), the same beyond Dagster's overhead
against the 5 s target, and with --quickstart the wall time of
`quantbot quickstart` in a fresh project directory.

With --month: the earlier system's two commands for January 2024 at 5m
(`backtest path-only`, then `backtest policy` of one policy) and all the
registry's policies over the month, each through the `quantbot` command in a
fresh process and instance, beside the engine+IO floor for the same work
measured in the same process (calls query + candle scan + preparation +
kernels, no Dagster), each as a ratio to it; targets: path-only at most 8 s,
one policy at most 4 s, all policies at most 10 s beyond Dagster's start-up.

With --year: a generated year (365 days at the sample's call rate) and the
registry's policies replicated to 25, through `quantbot backtest policy
--all-policies` at 5m; target at most 10 minutes; prints the peak RSS.

    python bench/pipeline_bench.py [--quickstart] [--month] [--year] [--data-dir data]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
PROJECT = Path(__file__).resolve().parents[1]
TARGET_BEYOND_DAGSTER_S = 5.0


def timed(label: str, results: list[tuple[str, float]]):  # type: ignore[no-untyped-def]
    class _Timer:
        def __enter__(self) -> None:
            self.start = time.perf_counter()

        def __exit__(self, *exc: object) -> None:
            results.append((label, time.perf_counter() - self.start))

    return _Timer()


def bench_day(data_dir: Path, work: Path, day: str, policy_id: str) -> list[tuple[str, float]]:
    results: list[tuple[str, float]] = []
    home = work / "dagster_home"
    home.mkdir(parents=True)
    shutil.copy(PROJECT / "dagster.yaml", home)
    os.environ["DAGSTER_HOME"] = str(home)
    with timed("dagster start-up: import, definitions, instance", results):
        import dagster as dg

        from quantbot_assets.definitions import build_definitions
        from quantbot_assets.defs.policies.partitions import ensure_policy_partition
        from quantbot_assets.launch import (
            execute_partitions,
            params_run_config,
        )
        from quantbot_assets.sample_data import ensure_sample_data
        from quantbot_assets.settings import Settings

        settings = Settings.from_env({"QUANTBOT_PROJECT_DIR": str(PROJECT)})
        settings = dataclasses.replace(
            settings,
            runs_dir=work / "runs",
            data_dir=data_dir,
            calls_path=data_dir / "alerts.duckdb",
            candles_path=data_dir / "candles",
        )
        defs = build_definitions(settings)
        instance = dg.DagsterInstance.get()
    ensure_sample_data(data_dir)

    @dg.asset
    def noop() -> None:
        """Nothing: measures Dagster's own per-run cost."""

    noop_job = dg.Definitions(
        assets=[noop], executor=dg.in_process_executor
    ).resolve_implicit_global_asset_job_def()
    noop_job.execute_in_process(instance=instance)  # first run pays one-off imports
    with timed("dagster per-run overhead (no-op asset run)", results):
        noop_job.execute_in_process(instance=instance)

    config = params_run_config({})
    ensure_policy_partition(instance, policy_id)
    # Warm-up on another day: numba compiles (or loads its cache) once per process.
    warm_day = "2024-01-02"
    with timed(f"warm-up {warm_day}: path-only + policy (includes JIT load/compile)", results):
        execute_partitions(
            defs,
            "path_only_backtest",
            [warm_day],
            instance=instance,
            run_config=config,
            label="warm",
        )
        execute_partitions(
            defs,
            "policy_backtest",
            [f"{warm_day}|{policy_id}"],
            instance=instance,
            run_config=config,
            label="warm",
        )
    with timed(f"path-only run {day}", results):
        [truth] = execute_partitions(
            defs, "path_only_backtest", [day], instance=instance, run_config=config, label="truth"
        )
    with timed(f"policy run {day}|{policy_id}", results):
        [policy] = execute_partitions(
            defs,
            "policy_backtest",
            [f"{day}|{policy_id}"],
            instance=instance,
            run_config=config,
            label="policy",
        )
    assert truth.success and policy.success, (truth.error, policy.error)
    return results


def bench_quickstart(work: Path, data_dir: Path) -> float:
    project = work / "project"
    project.mkdir()
    for name in ("dagster.yaml", "policies.yaml", "workspace.yaml"):
        shutil.copy(PROJECT / name, project / name)
    env = {
        **os.environ,
        "QUANTBOT_PROJECT_DIR": str(project),
        "DAGSTER_HOME": str(project),
        "QUANTBOT_DATA_DIR": str(data_dir),
    }
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "quantbot_assets.cli", "quickstart"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def _rss_mb_of_children() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def _project(work: Path, data_dir: Path, registry: Path | None = None) -> dict[str, str]:
    """A fresh project (instance, runs, catalog) reading the sample data; its environment."""
    project = work / "project"
    project.mkdir(parents=True, exist_ok=True)
    for name in ("dagster.yaml", "workspace.yaml"):
        shutil.copy(PROJECT / name, project / name)
    shutil.copy(registry or PROJECT / "policies.yaml", project / "policies.yaml")
    return {
        **os.environ,
        "QUANTBOT_PROJECT_DIR": str(project),
        "DAGSTER_HOME": str(project),
        "QUANTBOT_DATA_DIR": str(data_dir),
    }


def _cli(env: dict[str, str], *args: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "quantbot_assets.cli", *args],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


STARTUP = """
import warnings; warnings.filterwarnings("ignore")
import dagster as dg
from quantbot_assets.definitions import build_definitions
from quantbot_assets.settings import Settings
build_definitions(Settings.from_env()); dg.DagsterInstance.get()
"""


def dagster_startup(env: dict[str, str]) -> float:
    """A fresh process: import Dagster and the package, build definitions, open the instance."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", STARTUP], env=env, check=True)
    return time.perf_counter() - start


def engine_floor(data_dir: Path, interval: str, policies: dict) -> dict[str, float]:
    """The same month's work without Dagster: calls, candle scan, preparation, kernels."""
    from quantbot_assets.defs.backtest.truth import load_day_candles
    from quantbot_assets.engine import compute_paths, prepare_candles, simulate_policy
    from quantbot_assets.resources import BacktestParams, CallsSourceResource, CandleSourceResource

    params = BacktestParams(interval=interval)
    calls_source = CallsSourceResource(path=str(data_dir / "alerts.duckdb"))
    candle_source = CandleSourceResource(path=str(data_dir / "candles"))
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    calls = calls_source.load(1_704_067_200_000, 1_706_745_600_000).calls
    t1 = time.perf_counter()
    candles = load_day_candles(candle_source, calls, params)
    t2 = time.perf_counter()
    prepared, _ = prepare_candles(candles, interval=interval)
    t3 = time.perf_counter()
    compute_paths(calls, prepared, **params.truth_params())
    t4 = time.perf_counter()
    first = next(iter(policies))
    simulate_policy(calls, prepared, policies[first], policy_id=first, **params.policy_params())
    t5 = time.perf_counter()
    for pid, policy in policies.items():
        simulate_policy(calls, prepared, policy, policy_id=pid, **params.policy_params())
    t6 = time.perf_counter()
    out["calls query"] = t1 - t0
    out["candle scan"] = t2 - t1
    out["prepare_candles"] = t3 - t2
    out["truth kernel"] = t4 - t3
    out["one policy kernel"] = t5 - t4
    out[f"{len(policies)} policy kernels"] = t6 - t5
    return out


def bench_month(work: Path, data_dir: Path, interval: str = "5m") -> None:
    from quantbot_assets.policy_registry import load_registry
    from quantbot_assets.sample_data import ensure_sample_data

    ensure_sample_data(data_dir)
    policies = load_registry(PROJECT / "policies.yaml")
    engine_floor(data_dir, interval, policies)  # warm: numba, page cache
    floor = engine_floor(data_dir, interval, policies)
    env = _project(work / "month", data_dir)
    startup = dagster_startup(env)
    common = ["--from", "2024-01-01", "--to", "2024-01-31", "--interval", interval]
    calls = ["--calls-from-duckdb", str(data_dir / "alerts.duckdb")]
    path_only = _cli(env, "backtest", "path-only", *calls, *common)
    one = _cli(env, "backtest", "policy", *calls, "--policy-id", "fixed-stop-5pct", *common)
    every = _cli(env, "backtest", "policy", *calls, "--all-policies", *common)
    base = floor["calls query"] + floor["candle scan"] + floor["prepare_candles"]
    floors = {
        "path-only": base + floor["truth kernel"],
        "policy": base + floor["one policy kernel"],
        "all policies": base + floor[f"{len(policies)} policy kernels"],
    }
    print(f"\nJanuary 2024 at {interval}, sample data ({data_dir})")
    print(f"{'engine+IO floor (one process, no Dagster)':<58} {'seconds':>9}")
    for label, seconds in floor.items():
        print(f"  {label:<56} {seconds:>9.2f}")
    print(
        f"{'dagster start-up (fresh process: import, definitions, instance)':<58} {startup:>9.2f}"
    )
    print(
        f"{'command':<44} {'wall s':>8} {'beyond':>8} {'target':>7} {'floor s':>8} {'x floor':>8}"
    )
    for label, wall, target, floor_s in (
        ("backtest path-only (1 run)", path_only, 8.0, floors["path-only"]),
        ("backtest policy fixed-stop-5pct (1 run)", one, 4.0, floors["policy"]),
        (f"backtest policy --all-policies ({len(policies)})", every, 10.0, floors["all policies"]),
    ):
        beyond = wall - startup
        verdict = "PASS" if beyond <= target else "FAIL"
        print(
            f"{label:<44} {wall:>8.2f} {beyond:>8.2f} {target:>7.1f} {floor_s:>8.2f} "
            f"{wall / floor_s:>8.1f}  {verdict}"
        )


def bench_year(work: Path, interval: str = "5m", n_policies: int = 25) -> None:
    import yaml

    from quantbot_assets.policy_registry import load_registry, plain_policy
    from quantbot_assets.sample_data import generate_sample_data

    data_dir = work / "year-data"
    start = time.perf_counter()
    generate_sample_data(data_dir, days=365)
    generated = time.perf_counter() - start
    base = load_registry(PROJECT / "policies.yaml")
    policies = {}
    for i in range(n_policies):
        pid, policy = list(base.items())[i % len(base)]
        policies[f"{pid}-v{i}"] = plain_policy(policy)
    registry = work / "year-policies.yaml"
    registry.write_text(yaml.safe_dump({"policies": policies}, sort_keys=False))
    env = _project(work / "year", data_dir, registry)
    startup = dagster_startup(env)
    wall = _cli(
        env,
        "backtest",
        "policy",
        "--all-policies",
        "--from",
        "2024-01-01",
        "--to",
        "2024-12-30",
        "--interval",
        interval,
    )
    verdict = "PASS" if wall <= 600 else "FAIL"
    print(f"\nA generated year at {interval}: data generated in {generated:.0f} s")
    print(
        f"backtest policy --all-policies ({n_policies} policies x 365 days): {wall:.1f} s "
        f"(start-up {startup:.1f} s; target <= 600 s) {verdict}; peak RSS "
        f"{_rss_mb_of_children():.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data-dir", type=Path, default=PROJECT / "data", help="sample data (generated if absent)"
    )
    parser.add_argument("--day", default="2024-01-03")
    parser.add_argument("--policy-id", default="fixed-stop-5pct")
    parser.add_argument("--quickstart", action="store_true", help="also time `quantbot quickstart`")
    parser.add_argument("--month", action="store_true", help="the month commands (see above)")
    parser.add_argument("--year", action="store_true", help="a generated year x 25 policies")
    parser.add_argument("--skip-day", action="store_true", help="skip the one-day figures")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pipeline-bench-") as tmp:
        work = Path(tmp)
        if args.month:
            bench_month(work, args.data_dir.resolve())
        if args.year:
            bench_year(work)
        if args.skip_day:
            return
        results = bench_day(args.data_dir.resolve(), work, args.day, args.policy_id)
        figures = dict(results)
        overhead = figures["dagster per-run overhead (no-op asset run)"]
        e2e = (
            figures[f"path-only run {args.day}"]
            + figures[f"policy run {args.day}|{args.policy_id}"]
        )
        beyond = e2e - 2 * overhead
        print(f"\n{'figure':<66} {'seconds':>9}")
        for label, seconds in results:
            print(f"{label:<66} {seconds:>9.2f}")
        print(f"{'one day x one policy end to end (path-only + policy runs)':<66} {e2e:>9.2f}")
        verdict = "PASS" if beyond <= TARGET_BEYOND_DAGSTER_S else "FAIL"
        print(
            f"{'  beyond Dagster per-run overhead (target <= 5 s)':<66} {beyond:>9.2f}  {verdict}"
        )
        if args.quickstart:
            quick = bench_quickstart(work, args.data_dir.resolve())
            print(
                f"{'quantbot quickstart in a fresh project (sample data present)':<66} {quick:>9.2f}"
            )


if __name__ == "__main__":
    main()
