"""Fault injection through the `quantbot` command (issue 10, items 2, 4 and 6).

Every fault goes through the command line as a subprocess, on the tiny data set
of the platform tests, in a throw-away project directory (its own Dagster
instance, runs, catalog and registry):

- bad inputs: 30+ classes of data and option errors. A clear error is exit
  code 2 with exactly one line on stderr, no run directory and no Dagster run.
- SIGKILL at random points of path-only and policy runs (seeded). Afterwards:
  no run directory wrongly complete, the killed run is marked failed by the
  next command's start, and a final backtest succeeds.
- SIGTERM, SIGINT, SIGHUP during the first run of a two-run command: the
  whole command stops with 143, 130, 129 and its run is marked failed.
- concurrent backtests with catalog syncs and queries: every command ends
  well, every completed run is in the catalog at the end.
- a small full disk (a 4 MB tmpfs, mounted when running as root; skipped with
  the reason otherwise): the run ends failed with a one-line cause and no
  `_SUCCESS`.

It prints a table (class, trials, clear errors, tracebacks, stuck runs,
wrongly complete, data lost, escapes) and exits 1 when any of tracebacks,
stuck runs, wrongly complete, data lost or escapes is not 0.

    python bench/fault_cli.py                 # default: about 3 minutes
    python bench/fault_cli.py --quick         # a small version (CI's pytest)
    python bench/fault_cli.py --seed 7 --kill-trials 20 --keep
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402
import pandas as pd  # noqa: E402

from quantbot_assets_tests.platform.tiny_data import write_tiny_data  # noqa: E402

PYTHON = sys.executable
TRACEBACK = "Traceback (most recent call last)"
UNFINISHED = ("NOT_STARTED", "STARTING", "STARTED", "CANCELING")
READERS = ("catalog-sync", "catalog-query", "list")  # may find nothing yet: exit 2, one line


@dataclass
class Row:
    name: str
    trials: int = 0
    clear: int = 0
    tracebacks: int = 0
    stuck: int = 0
    wrongly_complete: int = 0
    data_lost: int = 0
    escapes: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def bad(self) -> int:
        return self.tracebacks + self.stuck + self.wrongly_complete + self.data_lost + self.escapes


@dataclass
class Done:
    argv: list[str]
    code: int
    out: str
    err: str
    seconds: float


class Project:
    """A throw-away project: tiny data, its own instance, runs, catalog and registry."""

    def __init__(self, root: Path, name: str) -> None:
        self.dir = root / name
        self.dir.mkdir(parents=True)
        tiny = write_tiny_data(self.dir / "data")
        self.calls, self.candles = tiny.calls, tiny.candles
        self.home = self.dir / "home"
        self.home.mkdir()
        shutil.copy(ROOT / "dagster.yaml", self.home / "dagster.yaml")
        shutil.copy(ROOT / "policies.yaml", self.dir / "policies.yaml")
        self.runs = self.dir / "runs"
        self.env = {
            **os.environ,
            "DAGSTER_HOME": str(self.home),
            "QUANTBOT_PROJECT_DIR": str(self.dir),
            "QUANTBOT_CALLS": str(self.calls),
            "QUANTBOT_CANDLES": str(self.candles),
            "QUANTBOT_RUNS_DIR": str(self.runs),
            "QUANTBOT_POLICY_REGISTRY": str(self.dir / "policies.yaml"),
            "PYTHONWARNINGS": "ignore",
        }

    def command(self, *args: str) -> list[str]:
        return [PYTHON, "-m", "quantbot_assets.cli", *args]

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> Done:
        argv = self.command(*args)
        started = time.perf_counter()
        done = subprocess.run(
            argv,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.dir,
        )
        return Done(argv, done.returncode, done.stdout, done.stderr, time.perf_counter() - started)

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.command(*args),
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=self.dir,
            start_new_session=True,
        )

    def run_dirs(self, root: Path | None = None) -> list[Path]:
        return sorted((root or self.runs).glob("*/run_id=*"))

    def dagster_runs(self) -> dict[str, str]:
        """run id -> status, read from the instance's SQLite storage (no Dagster import)."""
        db = self.home / "history" / "runs.db"
        return _sqlite_runs(db) if db.exists() else {}

    def catalogued(self) -> set[str]:
        db = self.dir / "data" / "backtest_catalog.duckdb"
        if not db.exists():
            return set()
        con = duckdb.connect(str(db), read_only=True)
        try:
            return {
                r[0] for r in con.execute("SELECT run_dir FROM backtest_runs_catalog").fetchall()
            }
        finally:
            con.close()


def _sqlite_runs(db: Path) -> dict[str, str]:
    import sqlite3

    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return dict(con.execute("SELECT run_id, status FROM runs").fetchall())
    finally:
        con.close()


def wrongly_complete(run_dir: Path) -> str | None:
    """Why a run directory with `_SUCCESS` is not really complete (None if it is, or has none)."""
    if not (run_dir / "_SUCCESS").exists():
        return None
    if (run_dir / "_FAILED").exists():
        return "both _SUCCESS and _FAILED"
    try:
        manifest = json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError) as exc:
        return f"run.json unreadable: {exc}"
    if manifest.get("status") != "completed":
        return f"status {manifest.get('status')}"
    artifacts = manifest.get("artifacts") or {}
    for name in manifest.get("planned_artifacts") or []:
        if name not in artifacts:
            return f"planned artifact {name} missing from run.json"
    for name, entry in artifacts.items():
        path = run_dir / entry["path"]
        if not path.is_file() or path.stat().st_size != entry.get("bytes", path.stat().st_size):
            return f"artifact {name} missing or truncated"
        try:
            import pyarrow.parquet as pq

            rows = pq.read_metadata(path).num_rows
        except Exception as exc:  # any unreadable file is the finding
            return f"artifact {name} unreadable: {exc}"
        if rows != entry.get("rows", rows):
            return f"artifact {name} has {rows} rows, run.json says {entry.get('rows')}"
    return None


def _one_line_error(done: Done) -> bool:
    lines = [line for line in done.err.splitlines() if line.strip()]
    return done.code == 2 and len(lines) == 1 and done.out.strip() == ""


# --- bad inputs ---------------------------------------------------------------------------


def bad_input_cases(p: Project, tmp: Path) -> dict[str, list[str]]:
    """class -> argv (after `quantbot`). Every one must be refused before any run."""
    calls = pd.read_parquet(p.calls)
    candles = pd.read_parquet(p.candles)
    day = ["--from", "2024-01-01", "--to", "2024-01-01", "--horizon", "3h"]
    cases: dict[str, list[str]] = {}

    def calls_file(name: str, frame: pd.DataFrame | None = None, data: bytes = b"") -> Path:
        path = tmp / name
        if frame is None:
            path.write_bytes(data)
        elif name.endswith(".csv"):
            frame.to_csv(path, index=False)
        else:
            frame.to_parquet(path, index=False)
        return path

    def path_only_calls(name: str, path: Path) -> None:
        flag = {".csv": "--calls-from-csv", ".parquet": "--calls-from-parquet"}.get(
            path.suffix, "--calls-from-duckdb"
        )
        cases[name] = ["backtest", "path-only", flag, str(path), *day]

    def path_only_candles(name: str, path: Path) -> None:
        cases[name] = ["backtest", "path-only", "--candles", str(path), *day]

    path_only_calls("calls: missing column", calls_file("c1.csv", calls.drop(columns="mint")))
    path_only_calls(
        "calls: timestamp as text", calls_file("c2.csv", calls.assign(alert_ts_ms="soon"))
    )
    path_only_calls(
        "calls: timestamp as float",
        calls_file("c3.parquet", calls.assign(alert_ts_ms=calls["alert_ts_ms"] / 1.0)),
    )
    path_only_calls(
        "calls: seconds", calls_file("c4.csv", calls.assign(alert_ts_ms=calls.alert_ts_ms // 1000))
    )
    path_only_calls(
        "calls: microseconds",
        calls_file("c5.parquet", calls.assign(alert_ts_ms=calls.alert_ts_ms * 1000)),
    )
    path_only_calls("calls: empty CSV", calls_file("c6.csv"))
    path_only_calls(
        "calls: CSV header only", calls_file("c7.csv", data=b"call_id,mint,caller_name\n")
    )
    path_only_calls("calls: corrupt Parquet", calls_file("c8.parquet", data=b"PAR1garbage"))
    path_only_calls("calls: empty Parquet file", calls_file("c9.parquet"))
    path_only_calls("calls: zero-row Parquet", calls_file("c10.parquet", calls.iloc[:0]))
    path_only_calls(
        "calls: all timestamps null",
        calls_file("c11.parquet", calls.assign(alert_ts_ms=pd.array([None] * len(calls), "Int64"))),
    )
    path_only_calls(
        "calls: random bytes CSV", calls_file("c12.csv", data=random.Random(1).randbytes(4000))
    )
    folder = tmp / "calls_dir"
    folder.mkdir()
    cases["calls: a directory"] = ["backtest", "path-only", "--calls-from-csv", str(folder), *day]
    cases["calls: no such file"] = [
        "backtest",
        "path-only",
        "--calls-from-parquet",
        str(tmp / "nope.parquet"),
        *day,
    ]
    txt = calls_file("c13.txt", data=b"call_id\n")
    cases["calls: unknown file kind"] = [
        "backtest",
        "path-only",
        "--calls-from-csv",
        str(txt),
        *day,
    ]
    db = tmp / "c14.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE other AS SELECT 1 AS x")
    con.close()
    path_only_calls("calls: DuckDB without the table", db)
    path_only_calls("calls: corrupt DuckDB file", calls_file("c15.duckdb", data=b"not a db" * 100))

    path_only_candles(
        "candles: missing column", calls_file("k1.parquet", candles.drop(columns="close"))
    )
    path_only_candles("candles: ts_ms as text", calls_file("k2.parquet", candles.assign(ts_ms="x")))
    path_only_candles(
        "candles: seconds", calls_file("k3.parquet", candles.assign(ts_ms=candles.ts_ms // 1000))
    )
    path_only_candles("candles: empty file", calls_file("k4.parquet"))
    path_only_candles("candles: corrupt Parquet", calls_file("k5.parquet", data=b"PAR1xx"))
    path_only_candles("candles: zero-row Parquet", calls_file("k6.parquet", candles.iloc[:0]))
    empty_dir = tmp / "candles_dir"
    empty_dir.mkdir()
    path_only_candles("candles: empty directory", empty_dir)
    path_only_candles("candles: no such path", tmp / "nowhere")
    path_only_candles("candles: CSV file", calls_file("k7.csv", candles))
    path_only_candles("candles: DuckDB without the table", db)

    policy = ["backtest", "policy", "--policy-id", "fixed-stop-5pct", *day]
    cases["--fee-bps nan"] = [*policy, "--fee-bps", "nan"]
    cases["--slippage-bps inf"] = [*policy, "--slippage-bps", "inf"]
    cases["--fee-bps negative"] = [*policy, "--fee-bps=-5"]
    deep = (
        '{"kind":"combo","policies":[' * 3000 + '{"kind":"time_stop","max_hold_ms":1}' + "]}" * 3000
    )
    cases["combo nested 3000 deep"] = [
        "backtest",
        "policy",
        "--policy-id",
        "deep",
        "--policy",
        deep,
        *day,
    ]
    nine = '{"kind":"combo","policies":[' * 9 + '{"kind":"time_stop","max_hold_ms":1}' + "]}" * 9
    cases["combo nested 9 deep"] = [
        "backtest",
        "policy",
        "--policy-id",
        "deep9",
        "--policy",
        nine,
        *day,
    ]
    cases["policy: unknown field"] = [
        "backtest",
        "policy",
        "--policy-id",
        "x1",
        "--policy",
        '{"kind":"fixed_stop","sl":1}',
        *day,
    ]
    cases["policy: unknown id"] = ["backtest", "policy", "--policy-id", "no-such-policy", *day]
    cases["date before the first day"] = [
        "backtest",
        "path-only",
        "--from",
        "2017-08-17",
        "--to",
        "2017-08-18",
    ]
    cases["date after today"] = [
        "backtest",
        "path-only",
        "--from",
        "2024-01-01",
        "--to",
        "2999-01-01",
    ]
    cases["--to before --from"] = [
        "backtest",
        "path-only",
        "--from",
        "2024-01-02",
        "--to",
        "2024-01-01",
    ]
    cases["date not a date"] = [
        "backtest",
        "path-only",
        "--from",
        "2024-02-30",
        "--to",
        "2024-03-01",
    ]
    cases["--interval 7m"] = ["backtest", "path-only", *day, "--interval", "7m"]
    cases["--horizon soon"] = [
        "backtest",
        "path-only",
        "--from",
        "2024-01-01",
        "--to",
        "2024-01-01",
        "--horizon",
        "soon",
    ]
    grid = calls_file("grid.json", data=b"{not json")
    cases["optimize: grid not JSON"] = [
        "backtest",
        "optimize",
        "--from",
        "2024-01-01",
        "--to",
        "2024-01-31",
        "--grid",
        str(grid),
    ]
    cases["optimize: current month"] = [
        "backtest",
        "optimize",
        "--from",
        "2024-01-01",
        "--to",
        time.strftime("%Y-%m-%d", time.gmtime(time.time() - 86400)),
    ]
    cases["QUANTBOT_FIRST_DAY invalid"] = [
        "env:QUANTBOT_FIRST_DAY=2017-13-45",
        "backtest",
        "path-only",
        *day,
    ]
    return cases


def scenario_bad_inputs(root: Path, quick: bool, workers: int) -> Row:
    p = Project(root, "bad_inputs")
    tmp = p.dir / "bad"
    tmp.mkdir()
    cases = bad_input_cases(p, tmp)
    if quick:
        keep = list(cases)[:: max(1, len(cases) // 10)]
        cases = {k: cases[k] for k in keep}
    row = Row(f"bad inputs ({len(cases)} classes)")

    def one(item: tuple[str, list[str]]) -> tuple[str, Done]:
        name, argv = item
        env = {}
        if argv[0].startswith("env:"):
            key, _, value = argv[0][4:].partition("=")
            env[key] = value
            argv = argv[1:]
        return name, p.run(*argv, env=env)

    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(one, cases.items()))
    for name, done in results:
        row.trials += 1
        if TRACEBACK in done.err or TRACEBACK in done.out:
            row.tracebacks += 1
            row.notes.append(f"{name}: traceback")
        elif _one_line_error(done):
            row.clear += 1
        else:
            row.escapes += 1
            row.notes.append(f"{name}: exit {done.code}: {done.err.strip()[:200]!r}")
    made = p.run_dirs()
    runs = p.dagster_runs()
    if made or runs:
        row.escapes += len(made) + len(runs)
        row.notes.append(f"{len(made)} run directories and {len(runs)} Dagster runs were made")
    return row


# --- kills ----------------------------------------------------------------------------------


def scenario_kills(root: Path, kind: str, trials: int, seed: int) -> Row:
    """SIGKILL `backtest <kind>` at random points; check the aftermath."""
    p = Project(root, f"kill_{kind}")
    row = Row(f"SIGKILL {kind} run")
    rng = random.Random(f"{seed}-{kind}")
    args = ["backtest", kind, "--from", "2024-01-01", "--to", "2024-01-02", "--horizon", "3h"]
    if kind == "policy":
        args[2:2] = ["--policy-id", "fixed-stop-5pct"]
    # A first complete run: how long the start and the run take (and a result that
    # must survive the kills).
    known = set(p.dagster_runs())
    t0 = time.perf_counter()
    process = p.start(*args)
    startup = _wait_for_new_run(p, known, process) or 1.0
    _out, err = process.communicate(timeout=300)
    total = time.perf_counter() - t0
    if process.returncode != 0:
        row.escapes += 1
        row.notes.append(f"baseline run failed: {err.strip()[-300:]}")
        return row
    kept = {d: wrongly_complete(d) for d in p.run_dirs() if (d / "_SUCCESS").exists()}
    run_span = max(0.5, total - startup)
    killed_runs: list[set[str]] = []
    points = {
        "before its run existed": 0,
        "during its run": 0,
        "after its run succeeded (summary, cataloguing)": 0,
    }
    before = set(p.dagster_runs())
    for trial in range(trials):
        process = p.start(*args)
        t0 = time.perf_counter()
        if rng.random() < 0.2:
            # A few kills anywhere in the start (imports, preflight, stale-run sweep).
            time.sleep(rng.uniform(0.1, startup))
        else:
            # Most at a random point of the run itself (steps, writes, markers, catalog).
            _wait_for_new_run(p, before, process)
            time.sleep(rng.uniform(0.0, run_span * 1.1))
        delay = time.perf_counter() - t0
        finished_first = process.poll() is not None
        if not finished_first:
            os.killpg(process.pid, signal.SIGKILL)
        _out, err = process.communicate(timeout=60)
        row.trials += 1
        if TRACEBACK in err:
            row.tracebacks += 1
            row.notes.append(f"trial {trial}: traceback before the kill")
        status_now = p.dagster_runs()
        now = set(status_now)
        killed_runs.append(now - before)
        new = [status_now[r] for r in now - before]
        if not new:
            points["before its run existed"] += 1
        elif all(s == "SUCCESS" for s in new):
            points["after its run succeeded (summary, cataloguing)"] += 1
        else:
            points["during its run"] += 1
        before = now
        if finished_first:
            row.notes.append(f"trial {trial}: ended before the kill at {delay:.1f}s")
        for run_dir in p.run_dirs():
            why = wrongly_complete(run_dir)
            if why:
                row.wrongly_complete += 1
                row.notes.append(f"trial {trial}: {run_dir.name}: {why}")
    # The next command marks the last killed run failed at its start, and succeeds.
    final = p.run(*args)
    row.trials += 1
    if TRACEBACK in final.err:
        row.tracebacks += 1
    if final.code != 0:
        row.escapes += 1
        row.notes.append(f"the backtest after the kills failed: {final.err.strip()[-300:]}")
    else:
        row.clear += 1
    status = p.dagster_runs()
    stuck = [r for r, s in status.items() if s in UNFINISHED]
    row.stuck += len(stuck)
    for run_id in stuck:
        row.notes.append(f"run {run_id} still {status[run_id]}")
    for trial_runs in killed_runs:
        for run_id in trial_runs:
            run_dir = next(iter(p.runs.glob(f"*/run_id={run_id}")), None)
            if run_dir is None or status.get(run_id) == "SUCCESS":
                continue
            if not (run_dir / "_FAILED").exists() and not (run_dir / "_SUCCESS").exists():
                row.stuck += 1
                row.notes.append(f"{run_dir.name}: killed run directory left without a marker")
    # Completed results from before the kills are intact and catalogued by the commands.
    catalogued = p.catalogued()
    for run_dir, why in kept.items():
        if why is None and wrongly_complete(run_dir) is not None:
            row.data_lost += 1
            row.notes.append(f"{run_dir.name}: was complete, is not any more")
    for run_dir in p.run_dirs():
        if (run_dir / "_SUCCESS").exists() and str(run_dir) not in catalogued:
            row.notes.append(f"{run_dir.name}: complete but not catalogued by its command")
    row.notes.append("kill points: " + ", ".join(f"{n} {where}" for where, n in points.items()))
    return row


def _wait_for_new_run(
    p: Project, known: set[str], process: subprocess.Popen[str], timeout: float = 120
) -> float | None:
    """Seconds until the process's Dagster run exists (None if the process ended first)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout and process.poll() is None:
        try:
            if set(p.dagster_runs()) - known:
                return time.perf_counter() - t0
        except Exception:  # the storage being created right now
            pass
        time.sleep(0.05)
    return None


def scenario_stop_signals(root: Path, quick: bool, seed: int) -> Row:
    """SIGTERM, SIGINT or SIGHUP during the first of two runs stops the whole command."""
    p = Project(root, "stop_signals")
    row = Row("SIGTERM/SIGINT/SIGHUP mid-command")
    args = [
        "backtest",
        "path-only",
        "--from",
        "2024-01-01",
        "--to",
        "2024-02-05",
        "--horizon",
        "3h",
    ]
    expected = {signal.SIGTERM: 143, signal.SIGINT: 130, signal.SIGHUP: 129}
    rng = random.Random(f"{seed}-signals")
    for signum in [signal.SIGTERM] if quick else list(expected):
        before = set(p.dagster_runs())
        process = p.start(*args)
        if _wait_for_new_run(p, before, process) is None:
            row.escapes += 1
            row.notes.append(f"{signum.name}: the command ended before its first run")
            continue
        time.sleep(rng.uniform(0.0, 2.5))  # the tiny first run takes about 3 s
        os.kill(process.pid, signum)
        _out, err = process.communicate(timeout=120)
        row.trials += 1
        new = {r: s for r, s in p.dagster_runs().items() if r not in before}
        dirs = [d for r in new for d in p.runs.glob(f"*/run_id={r}")]
        if TRACEBACK in err:
            row.tracebacks += 1
            row.notes.append(f"{signum.name}: traceback")
        stuck = [r for r, s in new.items() if s in UNFINISHED]
        row.stuck += len(stuck)
        row.wrongly_complete += sum(1 for d in dirs if wrongly_complete(d))
        unmarked = [
            d for d in dirs if not (d / "_SUCCESS").exists() and not (d / "_FAILED").exists()
        ]
        row.stuck += len(unmarked)
        if process.returncode == expected[signum] and len(new) == 1 and not stuck:
            row.clear += 1
            row.notes.append(f"{signum.name}: exit {process.returncode}: {err.strip()[-120:]}")
        else:
            row.escapes += 1
            row.notes.append(
                f"{signum.name}: exit {process.returncode}, {len(new)} runs {sorted(new.values())}"
            )
    return row


# --- concurrency ----------------------------------------------------------------------------


def scenario_concurrent(root: Path, quick: bool) -> Row:
    p = Project(root, "concurrent")
    row = Row("concurrent backtests + catalog sync/query")
    h = ["--horizon", "3h"]
    policy = ["backtest", "policy", "--from", "2024-01-01", "--to", "2024-01-02", *h]
    sync, query = ["backtest", "catalog-sync"], ["backtest", "catalog-query", "--limit", "5"]
    # (seconds after the start, argv): two backtests at once on a fresh instance, then
    # catalog syncs and queries while policy backtests run and register their runs.
    jobs: list[tuple[float, list[str]]] = [
        (0.0, ["backtest", "path-only", "--from", "2024-01-01", "--to", "2024-01-01", *h]),
        (0.0, ["backtest", "path-only", "--from", "2024-01-02", "--to", "2024-01-02", *h]),
        (4.0, [*policy, "--policy-id", "fixed-stop-5pct"]),
        (6.0, sync),
        (8.0, [*query, "--json"]),
        (10.0, sync),
    ]
    if not quick:
        jobs += [
            (5.0, [*policy, "--policy-id", "trailing-30pct-after-50pct"]),
            (12.0, query),
            (13.0, ["backtest", "list", "--json"]),
            (14.0, ["backtest", "path-only", "--from", "2024-01-01", "--to", "2024-01-02", *h]),
            (16.0, sync),
            (18.0, query),
        ]
    processes = []
    t0 = time.perf_counter()
    for at, argv in sorted(jobs, key=lambda job: job[0]):
        time.sleep(max(0.0, at - (time.perf_counter() - t0)))
        processes.append((argv, p.start(*argv)))
    for argv, process in processes:
        _out, err = process.communicate(timeout=600)
        row.trials += 1
        name = " ".join(argv[:3])
        if TRACEBACK in err:
            row.tracebacks += 1
            row.notes.append(f"{name}: traceback: {err.strip()[-300:]}")
        elif process.returncode == 0:
            row.clear += 1
        elif process.returncode == 2 and len(err.strip().splitlines()) == 1 and argv[1] in READERS:
            # "no catalog yet" / "no runs directory yet": a clear answer at that moment.
            row.clear += 1
            row.notes.append(f"{name}: {err.strip()}")
        else:
            row.escapes += 1
            row.notes.append(f"{name}: exit {process.returncode}: {err.strip()[-300:]}")
    sync = p.run("backtest", "catalog-sync", "--json")
    if sync.code != 0 or TRACEBACK in sync.err:
        row.escapes += 1
        row.notes.append(f"final catalog-sync: exit {sync.code}: {sync.err.strip()[-300:]}")
    catalogued = p.catalogued()
    for run_dir in p.run_dirs():
        why = wrongly_complete(run_dir)
        if why:
            row.wrongly_complete += 1
            row.notes.append(f"{run_dir.name}: {why}")
        if (run_dir / "_SUCCESS").exists() and str(run_dir) not in catalogued:
            row.data_lost += 1
            row.notes.append(f"{run_dir.name}: complete but not in the catalog")
    status = p.dagster_runs()
    row.stuck += sum(1 for s in status.values() if s in UNFINISHED)
    return row


# --- full disk ------------------------------------------------------------------------------


def scenario_full_disk(root: Path, quick: bool) -> Row:
    p = Project(root, "full_disk")
    row = Row("full disk (4 MB tmpfs)")
    disk = p.dir / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        row.notes.append(
            f"skipped: cannot mount a tmpfs here ({(mounted.stderr or 'not root').strip()})"
        )
        row.name += " - skipped"
        return row
    try:
        # Warm up (compiles, creates the instance) on the normal disk.
        p.run(
            "backtest", "path-only", "--from", "2024-01-01", "--to", "2024-01-01", "--horizon", "3h"
        )
        free_sizes = [0, 16_384] if quick else [0, 16_384, 65_536]
        for free in free_sizes:
            runs = disk / f"runs_{free}"
            runs.mkdir()
            filler = disk / "filler"
            filler.unlink(missing_ok=True)
            stat = os.statvfs(disk)
            room = stat.f_bavail * stat.f_frsize - free
            with filler.open("wb") as handle:
                handle.write(b"\0" * max(0, room))
            done = p.run(
                "backtest",
                "path-only",
                "--from",
                "2024-01-01",
                "--to",
                "2024-01-02",
                "--horizon",
                "3h",
                "--runs-dir",
                str(runs),
            )
            row.trials += 1
            made = sorted(runs.glob("*/run_id=*"))
            complete = [d for d in made if (d / "_SUCCESS").exists()]
            failed_lines = [line for line in done.err.splitlines() if line.startswith("FAILED")]
            if TRACEBACK in done.err:
                row.tracebacks += 1
                row.notes.append(f"{free} B free: traceback")
            elif done.code == 0:
                # Enough room after all: then the run must really be complete.
                bad = [d for d in complete if wrongly_complete(d)]
                row.wrongly_complete += len(bad)
                row.clear += 0 if bad else 1
                row.notes.append(f"{free} B free: the run fitted and completed")
            elif done.code == 1 and len(failed_lines) == 1 and not complete:
                row.clear += 1
                row.notes.append(f"{free} B free: {failed_lines[0][:160]}")
            else:
                row.escapes += 1
                row.notes.append(f"{free} B free: exit {done.code}: {done.err.strip()[-300:]}")
            for d in complete:
                why = wrongly_complete(d)
                if why:
                    row.wrongly_complete += 1
                    row.notes.append(f"{d.name}: {why}")
            filler.unlink(missing_ok=True)
        status = p.dagster_runs()
        row.stuck += sum(1 for s in status.values() if s in UNFINISHED)
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)
    return row


# --- main -----------------------------------------------------------------------------------


COLUMNS = [
    ("class", 44),
    ("trials", 6),
    ("clear errors", 12),
    ("tracebacks", 10),
    ("stuck runs", 10),
    ("wrongly complete", 16),
    ("data lost", 9),
    ("escapes", 7),
]


def print_table(rows: list[Row], verbose: bool) -> None:
    header = " | ".join(name.ljust(width) for name, width in COLUMNS)
    print(header)
    print("-|-".join("-" * width for _, width in COLUMNS))
    for r in rows:
        values = [r.name, r.trials, r.clear, r.tracebacks, r.stuck, r.wrongly_complete]
        values += [r.data_lost, r.escapes]
        print(" | ".join(str(v).ljust(w) for v, (_, w) in zip(values, COLUMNS, strict=True)))
    total = Row("total")
    for r in rows:
        for name in ("trials", "clear", "tracebacks", "stuck", "wrongly_complete"):
            setattr(total, name, getattr(total, name) + getattr(r, name))
        total.data_lost += r.data_lost
        total.escapes += r.escapes
    values = [total.name, total.trials, total.clear, total.tracebacks, total.stuck]
    values += [total.wrongly_complete, total.data_lost, total.escapes]
    print(" | ".join(str(v).ljust(w) for v, (_, w) in zip(values, COLUMNS, strict=True)))
    for r in rows:
        shown = (
            r.notes
            if verbose or r.bad
            else [n for n in r.notes if n.startswith(("skipped", "kill points"))]
        )
        for note in shown[:20]:
            print(f"  {r.name}: {note}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small version (CI)")
    parser.add_argument("--seed", type=int, default=10)
    parser.add_argument("--kill-trials", type=int, help="per kind (default 10; 2 with --quick)")
    parser.add_argument("--workers", type=int, default=2, help="bad inputs checked at once")
    parser.add_argument("--only", help="comma-separated: bad,kill,signals,concurrent,disk")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--verbose", action="store_true", help="print every note")
    args = parser.parse_args(argv)
    trials = args.kill_trials or (2 if args.quick else 10)
    only = set((args.only or "bad,kill,signals,concurrent,disk").split(","))
    root = Path(tempfile.mkdtemp(prefix="quantbot-faults-"))
    started = time.perf_counter()
    rows: list[Row] = []
    steps: list[Callable[[], list[Row]]] = []
    if "bad" in only:
        steps.append(lambda: [scenario_bad_inputs(root, args.quick, args.workers)])
    if "kill" in only:

        def kills() -> list[Row]:
            # The two kinds in parallel, in separate projects.
            with ThreadPoolExecutor(2) as pool:
                futures = [
                    pool.submit(scenario_kills, root, kind, trials, args.seed)
                    for kind in ("path-only", "policy")
                ]
                return [f.result() for f in futures]

        steps.append(kills)
    if "signals" in only:
        steps.append(lambda: [scenario_stop_signals(root, args.quick, args.seed)])
    if "concurrent" in only:
        steps.append(lambda: [scenario_concurrent(root, args.quick)])
    if "disk" in only:
        steps.append(lambda: [scenario_full_disk(root, args.quick)])
    try:
        for step in steps:
            t0 = time.perf_counter()
            got = step()
            rows += got
            print(
                f"# {', '.join(r.name for r in got)}: {time.perf_counter() - t0:.0f}s",
                file=sys.stderr,
                flush=True,
            )
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"work directory kept: {root}", file=sys.stderr)
    print(
        f"\nFault injection through the CLI (seed {args.seed}, {time.perf_counter() - started:.0f}s)\n"
    )
    print_table(rows, args.verbose)
    return 1 if any(r.bad for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
