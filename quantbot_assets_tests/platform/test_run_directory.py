"""RunDirectory without Dagster: begin, artifacts recorded, complete or failed."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa

from quantbot_assets.artifact_tables import to_arrow
from quantbot_assets.run_directory import ArtifactFrame, RunDirectory, RunPlan, run_type_of
from quantbot_assets.rundir import FAILED_MARKER, SUCCESS_MARKER, read_manifest
from quantbot_assets.schemas import ARTIFACT_FILES, ARTIFACT_SCHEMAS


def _errors_table() -> pa.Table:
    frame = ARTIFACT_SCHEMAS["errors"].empty_table().to_pandas()
    return to_arrow(frame, ARTIFACT_SCHEMAS["errors"], "errors")


def _directory(tmp_path: Path, planned: tuple[str, ...]) -> RunDirectory:
    plan = RunPlan(
        run_type="path-only",
        created=datetime(2024, 1, 2, tzinfo=UTC),
        job_name="path_only_backtest",
        planned_artifacts=planned,
        planned_checks=(),
    )
    return RunDirectory(
        tmp_path / "run_id=r1", "r1", plan, project_dir=str(tmp_path), run_log=lambda: ["a line"]
    )


def test_a_run_completes_when_its_last_planned_artifact_is_recorded(tmp_path: Path) -> None:
    directory = _directory(tmp_path, ("errors",))
    directory.begin({"errors": ["2024-01-01"]})
    assert read_manifest(directory.path).status == "pending"
    directory.mark_running()
    assert read_manifest(directory.path).status == "running"
    frame = ArtifactFrame(
        frame=pd.DataFrame(), parameters={"interval": "1m"}, dataset={"from": "2024-01-01"}
    )
    path, nbytes = directory.record_artifact("errors", _errors_table(), ["2024-01-01"], frame)
    manifest = read_manifest(directory.path)
    assert path == directory.path / ARTIFACT_FILES["errors"] and nbytes > 0
    assert manifest.status == "completed" and manifest.run_type == "path-only"
    assert manifest.artifacts["errors"].partition_key == "2024-01-01"
    assert manifest.parameters == {"interval": "1m"} and manifest.config_hash
    assert (directory.path / SUCCESS_MARKER).exists()
    assert (directory.path / "logs" / "stdout.txt").read_text() == "a line\n"


def test_a_failed_run_loses_success_and_gets_failed(tmp_path: Path) -> None:
    directory = _directory(tmp_path, ("alerts", "errors"))
    directory.begin({})
    directory.fail("truth_layer", "boom")
    manifest = read_manifest(directory.path)
    assert manifest.status == "failed" and manifest.error == "truth_layer: boom"
    assert (directory.path / FAILED_MARKER).read_text() == "truth_layer: boom"
    assert not (directory.path / SUCCESS_MARKER).exists()


def test_the_run_type_is_the_highest_declared() -> None:
    assert run_type_of([]) == "path-only"
    assert run_type_of(["path-only", "policy"]) == "policy"
    assert run_type_of(["optimization", "path-only"]) == "optimization"
