"""End-to-end timings through Dagster, in process, on the sample data.

Prints: Dagster's own start-up (import + definitions + instance) and per-run
overhead (a no-op asset run), one day x one policy end to end (the path-only
run and the policy run of 2024-01-03), the same beyond Dagster's overhead
against the 5 s target, and with --quickstart the wall time of
`quantbot quickstart` in a fresh project directory.

    python bench/pipeline_bench.py [--quickstart] [--data-dir data]
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
        from quantbot_assets.launch import (
            ensure_policy_partition,
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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pipeline-bench-") as tmp:
        work = Path(tmp)
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
