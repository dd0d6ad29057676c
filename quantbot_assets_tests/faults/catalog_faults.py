"""Catalog faults: crafted run directories, SIGKILL of `catalog-sync`, sync + query races.

Every command runs as a subprocess (`python -m quantbot_assets.cli backtest
catalog-sync | catalog-query`) against a scratch project, and what it left
behind is checked from the outside (the catalog database, its read snapshot,
the golden exports, temp files).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq

from quantbot_assets.catalog.writer import snapshot_path
from quantbot_assets.rundir import FAILED_MARKER, MANIFEST_FILE, SUCCESS_MARKER
from quantbot_assets_tests.catalog.runbuilder import build_run, empty_table, paths_table
from quantbot_assets_tests.faults.harness import (
    CliResult,
    Context,
    Trial,
    fault_group,
    finish,
    kill_group,
    run_cli,
    start_cli,
)

SYNC_TIMEOUT_S = 90.0
CREATED = datetime(2024, 1, 5, 12, 0, tzinfo=UTC)


# ---- a scratch project ---------------------------------------------------------------------


@contextlib.contextmanager
def no_fsync() -> Iterator[None]:
    """Building fixtures in this process needs no durability (fsync costs ~30 ms)."""
    real = os.fsync
    os.fsync = lambda fd: None
    try:
        yield
    finally:
        os.fsync = real


@dataclass
class Project:
    dir: Path

    @property
    def runs(self) -> Path:
        return self.dir / "runs"

    @property
    def db(self) -> Path:
        return self.dir / "data" / "backtest_catalog.duckdb"

    @property
    def exports(self) -> Path:
        return self.dir / "data" / "exports"

    @property
    def outside(self) -> Path:
        return self.dir / "outside"

    def sync_args(self) -> list[str]:
        return [
            "backtest",
            "catalog-sync",
            "--base-dir",
            str(self.runs),
            "--duckdb",
            str(self.db),
            "--exports-dir",
            str(self.exports),
            "--json",
        ]

    def sync(self, timeout: float = SYNC_TIMEOUT_S) -> CliResult:
        return run_cli(self.sync_args(), self.dir, timeout)


def new_project(ctx: Context, name: str) -> Project:
    project = Project(ctx.scratch(name))
    project.runs.mkdir(parents=True)
    project.outside.mkdir()
    (project.dir / "data").mkdir()
    return project


def good_tables(run_id: str, day: str, caller: str = "alice") -> dict[str, Any]:
    return {
        "alerts": empty_table("alerts"),
        "paths": paths_table(run_id, day, {caller: [(True, False, False, 2.5, -300.0)] * 3}),
    }


def day_of(index: int) -> str:
    return (datetime(2024, 1, 1) + timedelta(days=index)).strftime("%Y-%m-%d")  # noqa: DTZ001


def build_good(project: Project, run_id: str, index: int) -> Path:
    """A valid completed run whose partition (a day of its own) is `index`."""
    day = day_of(index)
    return build_run(
        project.runs,
        run_id,
        good_tables(run_id, day),
        created=CREATED + timedelta(minutes=index),
        partition_key=day,
    )


def outside_parquet(project: Project, tag: str) -> Path:
    """A `paths` file outside the runs root whose rows say where they came from."""
    path = project.outside / tag / "paths.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        paths_table("outside", "2024-01-01", {f"OUTSIDE-{tag}": [(True,) * 3 + (9.0, -1.0)] * 3}),
        path,
    )  # type: ignore[list-item]
    return path


@dataclass
class CatalogState:
    run_ids: set[str]
    artifact_counts: dict[str, tuple[int, int]]  # run id -> (artifact_count, artifact rows)
    artifact_paths: list[str]
    snapshot_run_ids: set[str] | None


def read_state(project: Project) -> CatalogState:
    """The catalog as its writer left it, and as readers see it (the snapshot)."""
    if not project.db.exists():
        return CatalogState(set(), {}, [], None)
    conn = duckdb.connect(str(project.db), read_only=True)
    try:
        runs = conn.execute(
            "SELECT r.run_id, r.artifact_count, count(a.run_id) FROM backtest_runs_catalog r "
            "LEFT JOIN backtest_artifacts_catalog a USING (run_id) GROUP BY ALL"
        ).fetchall()
        paths = [
            row[0] for row in conn.execute("SELECT path FROM backtest_artifacts_catalog").fetchall()
        ]
    finally:
        conn.close()
    snapshot_ids: set[str] | None = None
    snap = snapshot_path(project.db)
    if snap.exists():
        sconn = duckdb.connect(str(snap), read_only=True)
        try:
            snapshot_ids = {
                r[0] for r in sconn.execute("SELECT run_id FROM backtest_runs_catalog").fetchall()
            }
        finally:
            sconn.close()
    return CatalogState(
        {r[0] for r in runs}, {r[0]: (r[1], r[2]) for r in runs}, paths, snapshot_ids
    )


def export_callers(project: Project) -> set[str]:
    path = project.exports / "paths.parquet"
    if not path.exists():
        return set()
    return set(pq.read_table(path, columns=["caller_name"]).column(0).to_pylist())


def export_days(project: Project) -> set[str]:
    path = project.exports / "paths.parquet"
    if not path.exists():
        return set()
    ids = pq.read_table(path, columns=["call_id"]).column(0).to_pylist()
    return {call_id[:10] for call_id in ids}


def stale_temps(project: Project) -> list[str]:
    found = []
    for folder in (project.db.parent, project.exports):
        if folder.is_dir():
            found += [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]
    return found


def escaped_paths(project: Project, state: CatalogState) -> list[str]:
    root = os.path.realpath(project.runs)
    return [p for p in state.artifact_paths if not os.path.realpath(p).startswith(root + os.sep)]


def sync_outcome(result: CliResult, trial: Trial) -> dict[str, Any] | None:
    """Judge a catalog-sync's exit; its JSON report when it ran to the end."""
    if result.timed_out:
        trial.stuck = True
        trial.notes.append(f"catalog-sync did not finish in {SYNC_TIMEOUT_S:.0f}s")
        return None
    if result.traceback:
        trial.traceback = True
        trial.notes.append(f"traceback: {result.describe()}")
        return None
    if result.code == 2 and result.one_line_error():
        trial.clear_error = True
        trial.notes.append(f"one-line error: {result.describe()}")
        return None
    if result.code != 0:
        trial.traceback = True  # the error contract is broken even without a trace
        trial.notes.append(f"unexpected exit: {result.describe()}")
        return None
    try:
        report: dict[str, Any] = json.loads(result.stdout)
    except ValueError:
        trial.traceback = True
        trial.notes.append(f"catalog-sync --json printed no JSON: {result.stdout[:200]!r}")
        return None
    return report


# ---- crafted run directories ---------------------------------------------------------------


def _edit_json(run_dir: Path, change: Callable[[dict[str, Any]], None]) -> None:
    path = run_dir / MANIFEST_FILE
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _set(*keys: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        target = data
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return change


@dataclass
class Crafted:
    """How to damage a valid run directory, and which rejection reasons are right."""

    build: Callable[[Project, Path, str, Context], Path]  # (project, good run dir, id) -> run dir
    reasons: frozenset[str]  # empty: must stay uncatalogued without a rejection (no marker)
    notes: list[str] = field(default_factory=list)


def _manifest_edit(*keys: str, choices: list[Any]) -> Callable[[Project, Path, str, Context], Path]:
    def build(project: Project, run_dir: Path, tag: str, ctx: Context) -> Path:
        _edit_json(run_dir, _set(*keys, value=ctx.rng.choice(choices)))
        return run_dir

    return build


def _fifo(name: str) -> Callable[[Project, Path, str, Context], Path]:
    def build(project: Project, run_dir: Path, tag: str, ctx: Context) -> Path:
        target = run_dir / name
        target.unlink()
        os.mkfifo(target)
        return run_dir

    return build


def _huge_manifest(project: Project, run_dir: Path, tag: str, ctx: Context) -> Path:
    path = run_dir / MANIFEST_FILE
    text = path.read_text()
    with open(path, "w") as out:  # valid JSON: the manifest followed by 50 MB of spaces
        out.write(text)
        out.write(" " * (ctx.rng.randint(50, 60) << 20))
    return run_dir


def _artifact_symlink(project: Project, run_dir: Path, tag: str, ctx: Context) -> Path:
    target = run_dir / "truth" / "paths.parquet"
    target.unlink()
    os.symlink(outside_parquet(project, tag), target)
    return run_dir


def _path_traversal(project: Project, run_dir: Path, tag: str, ctx: Context) -> Path:
    outside = outside_parquet(project, tag)
    relative = os.path.relpath(outside, run_dir)  # ../../../outside/<tag>/paths.parquet
    choice = ctx.rng.choice([relative, str(outside), "truth/../" + relative])
    _edit_json(run_dir, _set("artifacts", "paths", "path", value=choice))
    return run_dir


def _unlink(name: str) -> Callable[[Project, Path, str, Context], Path]:
    def build(project: Project, run_dir: Path, tag: str, ctx: Context) -> Path:
        (run_dir / name).unlink()
        return run_dir

    return build


def _truncated_parquet(project: Project, run_dir: Path, tag: str, ctx: Context) -> Path:
    path = run_dir / "truth" / "paths.parquet"
    data = path.read_bytes()
    path.write_bytes(data[: ctx.rng.randint(0, len(data) - 1)])
    return run_dir


def _write_manifest_bytes(choices: list[bytes]) -> Callable[[Project, Path, str, Context], Path]:
    def build(project: Project, run_dir: Path, tag: str, ctx: Context) -> Path:
        (run_dir / MANIFEST_FILE).write_bytes(ctx.rng.choice(choices))
        return run_dir

    return build


def _non_utf8(project: Project, run_dir: Path, tag: str, ctx: Context) -> Path:
    text = (run_dir / MANIFEST_FILE).read_bytes()
    (run_dir / MANIFEST_FILE).write_bytes(text.replace(b'"main"', b'"ma\xff\xfein"'))
    return run_dir


def _both_markers(project: Project, run_dir: Path, tag: str, ctx: Context) -> Path:
    (run_dir / FAILED_MARKER).write_text("")
    return run_dir


def _many_artifacts(project: Project, run_dir: Path, tag: str, ctx: Context) -> Path:
    def change(data: dict[str, Any]) -> None:
        entry = data["artifacts"]["paths"]
        for i in range(ctx.rng.randint(3000, 12000)):
            data["artifacts"][f"extra_{i}"] = entry

    _edit_json(run_dir, change)
    return run_dir


def _manifest_dir(project: Project, run_dir: Path, tag: str, ctx: Context) -> Path:
    (run_dir / MANIFEST_FILE).unlink()
    (run_dir / MANIFEST_FILE).mkdir()
    return run_dir


def _manifest_symlink(project: Project, run_dir: Path, tag: str, ctx: Context) -> Path:
    outside = project.outside / f"{tag}.json"
    shutil.move(run_dir / MANIFEST_FILE, outside)
    os.symlink(outside, run_dir / MANIFEST_FILE)
    return run_dir


def _deep_json(project: Project, run_dir: Path, tag: str, ctx: Context) -> Path:
    depth = ctx.rng.randint(5_000, 200_000)
    _edit_json(run_dir, _set("parameters", value={}))
    text = (run_dir / MANIFEST_FILE).read_text()
    nested = "[" * depth + "]" * depth
    (run_dir / MANIFEST_FILE).write_text(
        text.replace('"parameters": {}', f'"parameters": {{"x": {nested}}}')
    )
    return run_dir


def _rename_dir(suffix: bytes) -> Callable[[Project, Path, str, Context], Path]:
    def build(project: Project, run_dir: Path, tag: str, ctx: Context) -> Path:
        target = os.fsencode(run_dir) + suffix
        os.rename(os.fsencode(run_dir), target)
        return Path(os.fsdecode(target))

    return build


CRAFTED: dict[str, Crafted] = {
    "created_at out of range (year 1 +01:00, 1970, 9999 -01:00)": Crafted(
        _manifest_edit(
            "created_at",
            choices=[
                "0001-01-01T00:00:00+01:00",
                "1970-01-01T00:00:00Z",
                "9999-12-31T23:59:59-01:00",
            ],
        ),
        frozenset({"timestamp_out_of_range"}),
    ),
    "completed_at far in the future": Crafted(
        _manifest_edit(
            "completed_at",
            choices=["2999-01-01T00:00:00Z", (datetime.now(UTC) + timedelta(days=30)).isoformat()],
        ),
        frozenset({"timestamp_out_of_range"}),
    ),
    "calls_count 2**70 / -1": Crafted(
        _manifest_edit("dataset", "calls_count", choices=[2**70, 2**63, -1]),
        frozenset({"value_out_of_range"}),
    ),
    "artifact bytes 2**70": Crafted(
        _manifest_edit("artifacts", "paths", "bytes", choices=[2**70, 2**64]),
        frozenset({"value_out_of_range"}),
    ),
    "negative row count": Crafted(
        _manifest_edit("artifacts", "paths", "rows", choices=[-3, -1]),
        frozenset({"value_out_of_range"}),
    ),
    "run.json is a FIFO": Crafted(_fifo(MANIFEST_FILE), frozenset({"not_a_regular_file"})),
    "run.json is a directory": Crafted(_manifest_dir, frozenset({"not_a_regular_file"})),
    "run.json is a symlink": Crafted(_manifest_symlink, frozenset({"symlink"})),
    "_SUCCESS is a FIFO": Crafted(_fifo(SUCCESS_MARKER), frozenset({"not_a_regular_file"})),
    "artifact is a FIFO": Crafted(_fifo("truth/paths.parquet"), frozenset({"missing_artifact"})),
    "run.json of 50+ MB": Crafted(_huge_manifest, frozenset({"manifest_too_large"})),
    "artifact is a symlink out of the root": Crafted(_artifact_symlink, frozenset({"symlink"})),
    "artifact path traversal / absolute": Crafted(
        _path_traversal, frozenset({"unsafe_artifact_path"})
    ),
    "missing run.json (marker only)": Crafted(
        _unlink(MANIFEST_FILE), frozenset({"manifest_unreadable"})
    ),
    "run.json without a marker": Crafted(_unlink(SUCCESS_MARKER), frozenset()),
    "truncated parquet": Crafted(_truncated_parquet, frozenset({"corrupt_artifact"})),
    "wrong schema version": Crafted(
        _manifest_edit("schema_version", choices=["9.9.9", "0.0.1"]),
        frozenset({"unknown_schema_version"}),
    ),
    "run id mismatch": Crafted(
        _manifest_edit("run_id", choices=["someone-else", "run-1\n"]),
        frozenset({"run_id_mismatch"}),
    ),
    "non-UTF-8 run.json": Crafted(_non_utf8, frozenset({"manifest_invalid"})),
    "run.json is an array / scalar / empty": Crafted(
        _write_manifest_bytes([b"[1, 2, 3]", b"42", b"", b"null", b'"run"']),
        frozenset({"manifest_invalid"}),
    ),
    "run.json nested 5k-200k deep": Crafted(_deep_json, frozenset({"manifest_invalid"})),
    "both markers": Crafted(_both_markers, frozenset({"conflicting_markers"})),
    "3,000-12,000 artifact entries": Crafted(
        _many_artifacts, frozenset({"unknown_artifact_type", "manifest_too_large"})
    ),
    "directory name not UTF-8": Crafted(_rename_dir(b"\xff\xfe"), frozenset({"bad_run_dir_name"})),
    "directory name with a newline": Crafted(_rename_dir(b"\n"), frozenset({"bad_run_dir_name"})),
}


@fault_group("catalog-sync: each crafted run directory alone", smoke=0, default=0, full=1)
def crafted_alone(ctx: Context, trials: int) -> Iterator[tuple[str, Trial]]:
    """Each crafted kind in a root of its own with one good run: exact attribution."""
    for _ in range(trials):
        for number, (kind, crafted) in enumerate(CRAFTED.items()):
            project = new_project(ctx, f"alone{number}")
            tag = f"crafted-{number:02d}"
            with no_fsync():
                build_good(project, "good-0", 0)
                crafted.build(project, build_good(project, tag, 0), tag, ctx)
            trial = Trial()
            report = sync_outcome(project.sync(), trial)
            state = read_state(project)
            if tag in state.run_ids:
                trial.wrongly_complete = True
                trial.notes.append(f"{tag} was catalogued")
            elif report is not None:
                reasons = _rejections_by_tag(report, {tag: kind})[tag]
                trial.clear_error = bool(reasons) or not crafted.reasons
                if set(reasons) - crafted.reasons:
                    trial.notes.append(
                        f"rejected as {reasons} (expected {sorted(crafted.reasons)})"
                    )
            if f"OUTSIDE-{tag}" in export_callers(project) or escaped_paths(project, state):
                trial.escape = True
                trial.notes.append("read a file outside the runs root")
            if "good-0" not in state.run_ids:
                trial.data_lost = True
                trial.notes.append("the good run beside it was not catalogued")
            yield kind, trial
            shutil.rmtree(project.dir, ignore_errors=True)


SWAP_ARTIFACT = "exports: artifact swapped for a symlink after cataloguing"
SWAP_RUN_DIR = "exports: run dir swapped for a symlink after cataloguing"
GOOD_AFTER = "a good run after the crafted ones"


def _rejections_by_tag(report: dict[str, Any], tags: dict[str, str]) -> dict[str, list[str]]:
    """Rejection reason codes per crafted tag (matched by the tag in the run dir path)."""
    found: dict[str, list[str]] = {tag: [] for tag in tags}
    for item in report.get("rejected", []):
        for tag in tags:
            if f"run_id={tag}" in item["run_dir"]:
                found[tag].append(item["reason"].split(":")[0])
    return found


@fault_group("catalog-sync: crafted run directories", smoke=1, default=2, full=5)
def crafted_run_dirs(ctx: Context, trials: int) -> Iterator[tuple[str, Trial]]:
    """Every crafted directory beside good runs, through catalog-sync as a subprocess.

    One round = all crafted kinds + good runs, a sync, then artifacts swapped
    for symlinks, a new good run, and a second sync.
    """
    for round_no in range(trials):
        project = new_project(ctx, f"crafted{round_no}")
        tags: dict[str, str] = {}
        with no_fsync():
            goods = [build_good(project, f"good-{i}", i) for i in range(3)]
            for number, (kind, crafted) in enumerate(CRAFTED.items()):
                tag = f"crafted-{number:02d}"
                tags[tag] = kind
                # Same partition day as good run 0: a wrongly catalogued one would show.
                run_dir = build_good(project, tag, 0)
                crafted.build(project, run_dir, tag, ctx)
        ctx.log(f"round {round_no}: {len(CRAFTED)} crafted + {len(goods)} good, first sync")
        first = project.sync()
        batch = Trial()
        report = sync_outcome(first, batch)
        state = read_state(project)
        callers = export_callers(project)
        found = _rejections_by_tag(report, tags) if report else {}
        for tag, kind in tags.items():
            trial = Trial(traceback=batch.traceback, stuck=batch.stuck, notes=list(batch.notes))
            if report is not None:
                reasons = found.get(tag, [])
                crafted = CRAFTED[kind]
                if tag in state.run_ids:
                    trial.wrongly_complete = True
                    trial.notes.append(f"{tag} was catalogued")
                elif reasons:
                    trial.clear_error = True
                    unexpected = set(reasons) - crafted.reasons
                    if unexpected or not crafted.reasons:
                        trial.notes.append(
                            f"rejected as {sorted(unexpected)} (expected {sorted(crafted.reasons)})"
                        )
                elif not crafted.reasons:
                    trial.clear_error = True  # no marker: correctly left out, not rejected
                else:
                    trial.notes.append("neither catalogued nor rejected")
                if f"OUTSIDE-{tag}" in callers:
                    trial.escape = True
                    trial.notes.append("exports hold rows of a file outside the runs root")
            missing = {f"good-{i}" for i in range(3)} - state.run_ids
            if missing:
                trial.data_lost = True
                trial.notes.append(f"good runs not catalogued beside it: {sorted(missing)}")
            if escaped_paths(project, state):
                trial.escape = True
                trial.notes.append(
                    f"catalogued paths outside the root: {escaped_paths(project, state)[:2]}"
                )
            yield kind, trial

        # Swap catalogued files for symlinks to outside data, then sync again.
        with no_fsync():
            artifact = goods[1] / "truth" / "paths.parquet"
            artifact.unlink()
            os.symlink(outside_parquet(project, "swap-artifact"), artifact)
            moved = project.outside / "moved-run"
            shutil.move(goods[2], moved)
            (moved / "truth" / "paths.parquet").unlink()
            shutil.copy(outside_parquet(project, "swap-run-dir"), moved / "truth" / "paths.parquet")
            os.symlink(moved, goods[2])
            shutil.rmtree(project.exports, ignore_errors=True)  # force a full re-read
            build_good(project, "good-after", 10)
        second = project.sync()
        after = Trial()
        report2 = sync_outcome(second, after)
        state = read_state(project)
        callers = export_callers(project)
        problems = json.dumps(report2.get("exports", {}).get("problems", [])) if report2 else ""
        for name, tag, run in (
            (SWAP_ARTIFACT, "swap-artifact", "good-1"),
            (SWAP_RUN_DIR, "swap-run-dir", "good-2"),
        ):
            trial = Trial(traceback=after.traceback, stuck=after.stuck, notes=list(after.notes))
            if f"OUTSIDE-{tag}" in callers:
                trial.escape = True
                trial.notes.append("exports read a file outside the runs root")
            elif (
                report2 is not None and f"run_id={run}" in problems and "symbolic link" in problems
            ):
                trial.clear_error = True
            elif report2 is not None:
                trial.notes.append(f"no export problem reported for {run}: {problems[:300]}")
            if run not in state.run_ids:
                trial.data_lost = True
                trial.notes.append(f"{run} left the catalog")
            yield name, trial
        trial = Trial(traceback=after.traceback, stuck=after.stuck, notes=list(after.notes))
        if report2 is not None and "good-after" not in state.run_ids:
            trial.data_lost = True
            trial.notes.append("a good run added after the crafted ones was not catalogued")
        if state.snapshot_run_ids != state.run_ids:
            trial.data_lost = True
            trial.notes.append("the read snapshot differs from the catalog")
        if day_of(10) not in export_days(project):
            trial.data_lost = True
            trial.notes.append("the good run's partition is not in the exports")
        if stale_temps(project):
            trial.stuck = True
            trial.notes.append(f"temp files left: {stale_temps(project)}")
        yield GOOD_AFTER, trial
        shutil.rmtree(project.dir, ignore_errors=True)


# ---- SIGKILL of catalog-sync -----------------------------------------------------------------


def _link_tree(src: Path, dst: Path) -> None:
    """Copy `src` to `dst`: run directories as hard links, the catalog files as copies."""
    shutil.copytree(src / "runs", dst / "runs", copy_function=os.link, symlinks=True)
    shutil.copytree(src / "data", dst / "data", symlinks=True)
    (dst / "outside").mkdir(exist_ok=True)


KILL_ROW = "SIGKILL of catalog-sync at a random point"


@fault_group("catalog-sync: SIGKILL at random points", smoke=3, default=10, full=25)
def killed_syncs(ctx: Context, trials: int) -> Iterator[tuple[str, Trial]]:
    """A catalogued batch A, a new batch B; the sync of B is killed, then synced again."""
    sizes = {"smoke": (30, 60), "default": (40, 80), "full": (150, 400)}[ctx.mode]
    base = new_project(ctx, "kill-base")
    with no_fsync():
        for i in range(sizes[0]):
            build_good(base, f"a-{i:04d}", i)
        bad = build_good(base, "a-bad", 0)
        _fifo(MANIFEST_FILE)(base, bad, "a-bad", ctx)
    setup = Trial(notes=["setup sync"])
    if sync_outcome(base.sync(), setup) is None:
        yield KILL_ROW, setup
        return
    with no_fsync():
        for i in range(sizes[1]):
            build_good(base, f"b-{i:04d}", sizes[0] + i)
    expected = {f"a-{i:04d}" for i in range(sizes[0])} | {f"b-{i:04d}" for i in range(sizes[1])}
    catalogued_before = read_state(base).run_ids

    # Calibration: how long an unkilled sync of batch B takes.
    calibration = Project(base.dir.parent / "kill-calibration")
    _link_tree(base.dir, calibration.dir)
    timed = calibration.sync()
    shutil.rmtree(calibration.dir, ignore_errors=True)
    window = max(timed.seconds, 1.0)
    ctx.log(f"unkilled sync of {sizes[1]} new runs: {timed.seconds:.2f}s")

    for number in range(trials):
        project = Project(base.dir.parent / f"kill-{number}")
        _link_tree(base.dir, project.dir)
        delay = ctx.rng.uniform(0.3, window * 1.05)
        started = time.monotonic()
        proc = start_cli(project.sync_args(), project.dir)
        time.sleep(delay)
        killed = proc.poll() is None
        kill_group(proc)
        finish(proc, started, 30)
        trial = Trial()
        trial.notes.append(f"killed at {delay:.2f}s" if killed else f"finished before {delay:.2f}s")
        recovery = project.sync()
        report = sync_outcome(recovery, trial)
        state = read_state(project)
        lost = catalogued_before - state.run_ids
        if lost:
            trial.data_lost = True
            trial.notes.append(f"catalogued runs lost: {sorted(lost)[:3]}")
        if report is not None and expected - state.run_ids:
            trial.data_lost = True
            trial.notes.append(
                f"not catalogued after recovery: {sorted(expected - state.run_ids)[:3]}"
            )
        if state.run_ids - expected:
            trial.wrongly_complete = True
            trial.notes.append(f"catalogued but invalid: {sorted(state.run_ids - expected)[:3]}")
        partial = {rid for rid, (count, rows) in state.artifact_counts.items() if count != rows}
        if partial:
            trial.wrongly_complete = True
            trial.notes.append(f"runs with a partial artifact inventory: {sorted(partial)[:3]}")
        if state.snapshot_run_ids != state.run_ids:
            trial.data_lost = True
            trial.notes.append("the read snapshot is not the catalog's state")
        days = export_days(project)
        missing_days = {day_of(i) for i in range(sizes[0] + sizes[1])} - days
        if report is not None and missing_days:
            trial.data_lost = True
            trial.notes.append(f"partitions missing from the exports: {sorted(missing_days)[:3]}")
        if stale_temps(project):
            trial.stuck = True
            trial.notes.append(f"temp files left after recovery: {stale_temps(project)}")
        yield KILL_ROW, trial
        shutil.rmtree(project.dir, ignore_errors=True)
    shutil.rmtree(base.dir, ignore_errors=True)


# ---- catalog-sync and catalog-query at the same time ----------------------------------------

RACE_SYNC = "catalog-sync while catalog-query runs"
RACE_QUERY = "catalog-query while catalog-sync runs"


QueryResults = list[tuple[str, CliResult, set[str] | None]]


def _query_loop(
    project: Project,
    worker: int,
    done: threading.Event,
    lock: threading.Lock,
    results: QueryResults,
) -> None:
    """Query until `done` (at least twice): the run list, or one artifact path."""
    queries = 0
    while not done.is_set() or queries < 2:
        if worker % 2:
            args = ["--run-id", "a-000", "--artifact-type", "paths", "--json"]
        else:
            args = ["--limit", "100000", "--json"]
        result = run_cli(
            ["backtest", "catalog-query", "--duckdb", str(project.db), *args], project.dir, 60
        )
        ids: set[str] | None = None
        if result.code == 0 and not worker % 2:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                ids = {row["run_id"] for row in json.loads(result.stdout)}
        with lock:
            results.append(("query", result, ids))
        queries += 1


@fault_group("catalog: concurrent sync and query", smoke=1, default=1, full=4)
def sync_query_race(ctx: Context, trials: int) -> Iterator[tuple[str, Trial]]:
    """Syncs of new batches while queries read the catalog; every command must succeed."""
    for number in range(trials):
        project = new_project(ctx, f"race{number}")
        with no_fsync():
            first = [build_good(project, f"a-{i:03d}", i) for i in range(40)]
        setup = Trial(notes=["setup sync"])
        if sync_outcome(project.sync(), setup) is None:
            yield RACE_SYNC, setup
            continue
        known = {p.name.removeprefix("run_id=") for p in first}
        results: QueryResults = []
        lock = threading.Lock()
        done = threading.Event()

        threads = [
            threading.Thread(target=_query_loop, args=(project, w, done, lock, results))
            for w in range(2)
        ]
        for thread in threads:
            thread.start()
        batches = 3 if ctx.mode == "full" else 2
        added = set(known)
        for batch in range(batches):
            with no_fsync():
                for i in range(30):
                    run_id = f"b{batch}-{i:03d}"
                    build_good(project, run_id, 100 + batch * 30 + i)
                    added.add(run_id)
            synced = project.sync()
            with lock:
                results.append(("sync", synced, None))
        done.set()
        for thread in threads:
            thread.join(120)
        state = read_state(project)
        for kind, result, ids in results:
            trial = Trial()
            if kind == "sync":
                sync_outcome(result, trial)
            elif result.timed_out:
                trial.stuck = True
            elif result.traceback:
                trial.traceback = True
                trial.notes.append(result.describe())
            elif result.code != 0:
                trial.traceback = True
                trial.notes.append(f"query failed: {result.describe()}")
            elif ids is not None and not known <= ids:
                trial.data_lost = True
                trial.notes.append(f"a query missed catalogued runs: {sorted(known - ids)[:3]}")
            elif ids is not None and not ids <= added:
                trial.wrongly_complete = True
                trial.notes.append(f"a query listed unknown runs: {sorted(ids - added)[:3]}")
            yield (RACE_SYNC if kind == "sync" else RACE_QUERY), trial
        final = Trial()
        if added - state.run_ids:
            final.data_lost = True
            final.notes.append(f"not catalogued at the end: {sorted(added - state.run_ids)[:3]}")
        if state.snapshot_run_ids != state.run_ids:
            final.data_lost = True
            final.notes.append("the read snapshot is not the catalog's state")
        yield RACE_SYNC, final
        shutil.rmtree(project.dir, ignore_errors=True)
