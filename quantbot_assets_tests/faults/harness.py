"""The fault-injection harness: seeded trials, one table, a verdict.

A *fault group* is a function registered with `@fault_group(...)`. It gets a
`Context` (seeded random source, scratch directory, mode) and the number of
trials to run, and yields `(row name, Trial)` pairs; one group may fill
several rows of the table (for example one row per crafted run directory).
The table sums the trials of each row:

    class | trials | clear errors | tracebacks | stuck runs | wrongly complete | data lost | escapes

- clear errors: the fault was refused with a reason (a rejection, a one-line
  error, exit code 2); expected, not a failure;
- tracebacks: a Python traceback reached a user (stderr);
- stuck runs: a command that did not finish within its timeout, or debris a
  later command does not clean up (a temp file, a lock nobody releases);
- wrongly complete: something incomplete or invalid was recorded as complete
  (catalogued, registered, marked `_SUCCESS`);
- data lost: something that was recorded (a catalogued run, a policy id, an
  export's rows) is gone or invisible to readers afterwards;
- escapes: a file outside the runs root was read or written, or an input
  got past a check meant to refuse it.

The suite fails (exit code 1) when any of the last five columns is not 0.

To add classes, write a module with `@fault_group` functions and list it in
`quantbot_assets_tests.faults.GROUP_MODULES`.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

MODES = ("smoke", "default", "full")
BAD_COLUMNS = ("traceback", "stuck", "wrongly_complete", "data_lost", "escape")
COLUMNS = ("clear_error", *BAD_COLUMNS)
HEADERS = {
    "clear_error": "clear errors",
    "traceback": "tracebacks",
    "stuck": "stuck runs",
    "wrongly_complete": "wrongly complete",
    "data_lost": "data lost",
    "escape": "escapes",
}
TRACEBACK_MARK = "Traceback (most recent call last)"


@dataclass
class Trial:
    """The outcome of one trial of one row."""

    clear_error: bool = False
    traceback: bool = False
    stuck: bool = False
    wrongly_complete: bool = False
    data_lost: bool = False
    escape: bool = False
    notes: list[str] = field(default_factory=list)

    def bad(self) -> bool:
        return any(getattr(self, column) for column in BAD_COLUMNS)


@dataclass
class Context:
    seed: int
    mode: str
    work: Path
    rng: random.Random
    verbose: bool = False

    def scratch(self, name: str) -> Path:
        """A fresh directory under the suite's work directory."""
        path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.work))
        return path

    def log(self, message: str) -> None:
        if self.verbose:
            print(f"  [{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


GroupFn = Callable[[Context, int], Iterator[tuple[str, Trial]]]


@dataclass(frozen=True)
class FaultGroup:
    name: str
    trials: dict[str, int]  # mode -> trials
    run: GroupFn


GROUPS: list[FaultGroup] = []


def fault_group(name: str, *, smoke: int, default: int, full: int) -> Callable[[GroupFn], GroupFn]:
    """Register a fault group with its trial counts per mode."""

    def register(fn: GroupFn) -> GroupFn:
        GROUPS.append(FaultGroup(name, {"smoke": smoke, "default": default, "full": full}, fn))
        return fn

    return register


# ---- running commands ---------------------------------------------------------------------


@dataclass
class CliResult:
    argv: list[str]
    code: int | None  # None: timed out (killed)
    stdout: str
    stderr: str
    seconds: float

    @property
    def timed_out(self) -> bool:
        return self.code is None

    @property
    def traceback(self) -> bool:
        return TRACEBACK_MARK in self.stderr or TRACEBACK_MARK in self.stdout

    def one_line_error(self) -> bool:
        """Exit code 2 with exactly one non-empty line on stderr."""
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        return self.code == 2 and len(lines) == 1

    def describe(self) -> str:
        tail = (self.stderr.strip().splitlines() or [""])[-1][:200]
        return f"exit {self.code} after {self.seconds:.1f}s: {tail}"


def cli_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "quantbot_assets.cli", *args]


def cli_env(project: Path) -> dict[str, str]:
    """The environment of a CLI subprocess: everything under `project`."""
    (project / "dagster_home").mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(
        {
            "QUANTBOT_PROJECT_DIR": str(project),
            "DAGSTER_HOME": str(project / "dagster_home"),
            "PYTHONWARNINGS": "ignore",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def start_cli(args: Sequence[str], project: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        cli_argv(*args),
        env=cli_env(project),
        cwd=project,  # hermetic: nothing is found through the caller's directory
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="backslashreplace",
        start_new_session=True,  # its own process group: a kill reaches its children only
    )


def finish(proc: subprocess.Popen[str], started: float, timeout: float) -> CliResult:
    """Wait for `proc`; on timeout kill its process group and report code None."""
    try:
        out, err = proc.communicate(timeout=timeout)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, err = proc.communicate()
        code = None
    argv = [str(a) for a in proc.args] if isinstance(proc.args, list) else [str(proc.args)]
    return CliResult(argv, code, out, err, time.monotonic() - started)


def kill_group(proc: subprocess.Popen[str], sig: int = signal.SIGKILL) -> None:
    """Send `sig` to the process group of `proc` (started by us with its own session)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def run_cli(args: Sequence[str], project: Path, timeout: float = 60.0) -> CliResult:
    started = time.monotonic()
    return finish(start_cli(args, project), started, timeout)


# ---- the suite ---------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    trials: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COLUMNS, 0))
    notes: list[str] = field(default_factory=list)

    def add(self, trial: Trial) -> None:
        self.trials += 1
        for column in COLUMNS:
            self.counts[column] += int(getattr(trial, column))
        self.notes += trial.notes


def load_groups(modules: Sequence[str]) -> list[FaultGroup]:
    for module in modules:
        importlib.import_module(module)
    return list(GROUPS)


def run_suite(
    groups: Sequence[FaultGroup],
    *,
    mode: str,
    seed: int,
    work: Path,
    only: str | None = None,
    verbose: bool = False,
) -> list[Row]:
    rows: dict[str, Row] = {}
    for index, group in enumerate(groups):
        if only and only not in group.name:
            continue
        trials = group.trials[mode]
        if trials <= 0:
            continue
        group_work = work / f"g{index}"
        group_work.mkdir(parents=True, exist_ok=True)
        ctx = Context(seed, mode, group_work, random.Random(f"{seed}:{group.name}"), verbose)
        started = time.monotonic()
        ctx.log(f"group {group.name!r}: {trials} trials")
        try:
            for name, trial in group.run(ctx, trials):
                rows.setdefault(name, Row(name)).add(trial)
        except Exception as exc:  # a harness bug must show, but not hide the other groups
            row = rows.setdefault(f"{group.name} (harness error)", Row(f"{group.name} (harness)"))
            detail = traceback.format_exc() if verbose else f"{type(exc).__name__}: {exc}"
            row.add(Trial(traceback=True, notes=[f"harness error: {detail}"]))
        ctx.log(f"group {group.name!r} done in {time.monotonic() - started:.1f}s")
        shutil.rmtree(group_work, ignore_errors=True)
    return list(rows.values())


def format_table(rows: Sequence[Row]) -> str:
    headers = ["class", "trials", *(HEADERS[c] for c in COLUMNS)]
    body = [[row.name, str(row.trials), *(str(row.counts[c]) for c in COLUMNS)] for row in rows]
    totals = ["TOTAL", str(sum(r.trials for r in rows))]
    totals += [str(sum(r.counts[c] for r in rows)) for c in COLUMNS]
    widths = [max(len(line[i]) for line in [headers, *body, totals]) for i in range(len(headers))]

    def fmt(line: list[str]) -> str:
        cells = [line[0].ljust(widths[0])] + [
            v.rjust(w) for v, w in zip(line[1:], widths[1:], strict=True)
        ]
        return "| " + " | ".join(cells) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([fmt(headers), rule, *(fmt(line) for line in body), rule, fmt(totals)])


def failures(rows: Sequence[Row]) -> list[Row]:
    return [row for row in rows if any(row.counts[c] for c in BAD_COLUMNS)]


def main(argv: Sequence[str] | None = None, modules: Sequence[str] | None = None) -> int:
    from quantbot_assets_tests.faults import GROUP_MODULES

    parser = argparse.ArgumentParser(
        description="Seeded fault-injection trials; prints the fault table, exits 1 on a failure."
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--full", action="store_true", help="more trials per class")
    size.add_argument("--smoke", action="store_true", help="a few trials per class (the pytest)")
    parser.add_argument("--seed", type=int, default=20240103)
    parser.add_argument("--only", help="run only the groups whose name contains this text")
    parser.add_argument("--work-dir", type=Path, help="scratch directory (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress on stderr")
    args = parser.parse_args(argv)
    mode = "full" if args.full else "smoke" if args.smoke else "default"
    groups = load_groups(modules if modules is not None else GROUP_MODULES)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="quantbot-faults-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        rows = run_suite(
            groups, mode=mode, seed=args.seed, work=work, only=args.only, verbose=args.verbose
        )
    finally:
        if not args.keep and args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"fault injection: mode {mode}, seed {args.seed}, {time.monotonic() - started:.0f} s")
    print(format_table(rows))
    bad = failures(rows)
    for row in bad:
        for note in dict.fromkeys(row.notes):
            print(f"  {row.name}: {note}")
    if args.verbose:
        for row in rows:
            if row not in bad:
                for note in dict.fromkeys(row.notes):
                    print(f"  (note) {row.name}: {note}")
    print(
        "FAILED" if bad else "OK: no tracebacks, stuck runs, wrong completions, losses or escapes"
    )
    return 1 if bad else 0
