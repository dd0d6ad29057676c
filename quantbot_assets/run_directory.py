"""One run's directory and its lifecycle: begin, artifact recorded, complete, failed.

Plain Python (no Dagster). A `RunDirectory` is told what its run plans
(`RunPlan`) and where its log lines come from; it keeps `run.json` (under a
lock: steps may run in parallel), writes the artifact files, the run's
provenance (git commit, branch, dirty), `logs/stdout.txt`, and `_SUCCESS`
once every planned artifact is in place or `_FAILED` when a step fails.
The layout and the manifest itself are `rundir`'s.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from quantbot_assets.rundir import (
    FAILED_MARKER,
    SUCCESS_MARKER,
    ArtifactEntry,
    DatasetWindow,
    FeaturesEntry,
    RunManifest,
    RunType,
    atomic_write_bytes,
    atomic_write_parquet,
    config_hash,
    iso_utc,
    locked_manifest,
    utc_now_iso,
    write_marker,
)
from quantbot_assets.schemas import ARTIFACT_FILES, SCHEMA_VERSIONS

# The run type of a run that plans several layers: the last of these it plans.
RUN_TYPE_ORDER: tuple[RunType, ...] = ("path-only", "policy", "optimization")


@dataclass
class ArtifactFrame:
    """What an artifact asset returns: its rows plus what the manifest records."""

    frame: pd.DataFrame
    parameters: dict[str, Any] = field(default_factory=dict)
    dataset: dict[str, Any] = field(default_factory=dict)  # from, to, interval, calls_count
    timing: dict[str, float] = field(default_factory=dict)  # phase -> ms
    params_hash: str | None = None  # the parameter set (quantbot_assets.params)
    # partition key -> metadata of that partition's materialization
    partition_metadata: dict[str, dict[str, Any]] = field(default_factory=dict)
    features: list[FeaturesEntry] = field(default_factory=list)
    # (calls_hash, candles_hash, data_fingerprint) of the data the run read; the artifact
    # written last wins (a policy run's trades after the truth layer it computed for some days)
    data: tuple[str, str, str] | None = None


@dataclass(frozen=True)
class RunPlan:
    """What a run is and what it will write: the manifest a new run directory starts with."""

    run_type: RunType
    created: datetime
    job_name: str | None = None
    planned_artifacts: tuple[str, ...] = ()
    planned_checks: tuple[str, ...] | None = None  # None: the plan does not say


def run_type_of(declared: Iterable[RunType]) -> RunType:
    """The run type of a run whose artifacts declare these types (path-only when none)."""
    types = set(declared)
    return max(types, key=RUN_TYPE_ORDER.index) if types else "path-only"


@cache
def git_provenance(project_dir: str) -> tuple[str | None, str | None, bool | None]:
    """(commit, branch, dirty) of the project's checkout; None where git does not say."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", "-C", project_dir, *args], capture_output=True, text=True, timeout=5
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    branch = git("rev-parse", "--abbrev-ref", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return commit, branch, (None if status is None else bool(status))


def merge_dataset(window: DatasetWindow, dataset: Mapping[str, Any]) -> DatasetWindow:
    """The run's data window widened by one artifact's (`from`, `to`, interval, calls)."""
    merged = window.model_dump(by_alias=True)
    for key in ("from", "to"):
        value = dataset.get(key)
        if value is None:
            continue
        current = merged.get(key)
        if (
            current is None
            or (key == "from" and value < current)
            or (key == "to" and value > current)
        ):
            merged[key] = value
    if dataset.get("interval"):
        merged["interval"] = dataset["interval"]
    if dataset.get("calls_count") is not None:
        merged["calls_count"] = max(merged.get("calls_count") or 0, dataset["calls_count"])
    return DatasetWindow.model_validate(merged)


def _parse_iso(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


class RunDirectory:
    """`runs/YYYY-MM/run_id=<id>/` of one run, and the steps of its lifecycle.

    `run_log` gives the run's log lines so far (written to `logs/stdout.txt`
    when the run completes or fails); `project_dir` is the checkout whose git
    commit the manifest records.
    """

    def __init__(
        self,
        path: Path,
        run_id: str,
        plan: RunPlan,
        *,
        project_dir: str = ".",
        run_log: Callable[[], Iterable[str]] = lambda: (),
    ) -> None:
        self.path = Path(path)
        self.run_id = run_id
        self.plan = plan
        self.project_dir = project_dir
        self.run_log = run_log

    def new_manifest(self) -> RunManifest:
        """The manifest of this run before any step wrote to it: the plan and provenance."""
        plan = self.plan
        commit, branch, dirty = git_provenance(self.project_dir)
        return RunManifest(
            run_id=self.run_id,
            run_type=plan.run_type,
            status="pending",
            created_at=iso_utc(plan.created),
            git_commit=commit,
            git_branch=branch,
            git_dirty=dirty,
            job_name=plan.job_name,
            planned_artifacts=list(plan.planned_artifacts),
            schema_versions={name: SCHEMA_VERSIONS[name] for name in plan.planned_artifacts},
            planned_checks=None if plan.planned_checks is None else list(plan.planned_checks),
        )

    @contextmanager
    def manifest(self) -> Iterator[RunManifest]:
        """Open (creating if needed) this run's manifest for update."""
        with locked_manifest(self.path, self.new_manifest) as manifest:
            yield manifest

    def begin(self, partition_keys: Mapping[str, list[str]]) -> None:
        """Create the directory (status pending) and record each asset's partition keys."""
        with self.manifest() as manifest:
            for asset_key, keys in partition_keys.items():
                if keys:
                    manifest.partition_keys[asset_key] = list(keys)

    def mark_running(self) -> None:
        with self.manifest() as manifest:
            _start(manifest)

    def record_truth_sources(self, sources: Mapping[str, str]) -> None:
        """day -> the `paths` file whose truth layer this run's trades used."""
        with self.manifest() as manifest:
            manifest.truth_sources.update(sources)

    def record_artifact(
        self,
        name: str,
        table: pa.Table,
        partition_keys: list[str],
        artifact: ArtifactFrame | None = None,
        asset_key: str | None = None,
    ) -> tuple[Path, int]:
        """Write one artifact file and record it in `run.json`; returns its path and size.

        Completes the run (`logs/stdout.txt`, then `_SUCCESS`) once every
        artifact it planned is recorded.
        """
        started = time.perf_counter()
        relative = ARTIFACT_FILES[name]
        nbytes = atomic_write_parquet(table, self.path / relative)
        with self.manifest() as manifest:
            manifest.artifacts[name] = ArtifactEntry(
                path=relative,
                rows=table.num_rows,
                bytes=nbytes,
                schema_version=SCHEMA_VERSIONS[name],
                asset_key=asset_key or name,
                partition_key=partition_keys[0] if len(partition_keys) == 1 else None,
                partition_keys=partition_keys,
                params_hash=artifact.params_hash if artifact is not None else None,
            )
            manifest.schema_versions[name] = SCHEMA_VERSIONS[name]
            if partition_keys:
                manifest.partition_keys[asset_key or name] = partition_keys
            if artifact is not None:
                _record_frame(manifest, artifact)
            if manifest.parameters:
                manifest.config_hash = config_hash(manifest.parameters)
            manifest.timing[f"{name}.write"] = round((time.perf_counter() - started) * 1000, 3)
            _start(manifest)
            complete = manifest.status != "failed" and set(manifest.planned_artifacts) <= set(
                manifest.artifacts
            )
            if complete:
                manifest.status = "completed"
                manifest.completed_at = utc_now_iso()
                manifest.timing["total"] = round(
                    (_parse_iso(manifest.completed_at) - _parse_iso(manifest.created_at)) * 1000,
                    3,
                )
        if complete:
            self.write_log()
            write_marker(self.path, SUCCESS_MARKER)
        return self.path / relative, nbytes

    def fail(self, step_key: str, error: str) -> None:
        """Status failed with the step and its error, `_SUCCESS` removed, `_FAILED` written."""
        # A run that fails before its first step opened the manifest records no plan.
        plan = self.plan
        bare = RunManifest(
            run_id=self.run_id,
            run_type=plan.run_type,
            created_at=iso_utc(plan.created),
            job_name=plan.job_name,
        )
        with locked_manifest(self.path, bare) as manifest:
            manifest.status = "failed"
            manifest.completed_at = utc_now_iso()
            manifest.error = f"{step_key}: {error}"
        (self.path / SUCCESS_MARKER).unlink(missing_ok=True)
        self.write_log(manifest.error)
        write_marker(self.path, FAILED_MARKER, manifest.error)

    def write_log(self, error: str | None = None) -> None:
        """`logs/stdout.txt`: the run's log lines so far (and the error it failed with)."""
        lines = list(self.run_log())
        if error:
            lines.append(f"FAILED {error}")
        atomic_write_bytes(self.path / "logs" / "stdout.txt", ("\n".join(lines) + "\n").encode())


def _start(manifest: RunManifest) -> None:
    if manifest.status == "pending":
        manifest.status = "running"
        manifest.started_at = manifest.started_at or utc_now_iso()


def _record_frame(manifest: RunManifest, artifact: ArtifactFrame) -> None:
    manifest.parameters.update(artifact.parameters)
    manifest.dataset = merge_dataset(manifest.dataset, artifact.dataset)
    manifest.timing.update(artifact.timing)
    manifest.features += [f for f in artifact.features if f not in manifest.features]
    if artifact.data is not None:
        manifest.calls_hash, manifest.candles_hash, manifest.data_fingerprint = artifact.data
