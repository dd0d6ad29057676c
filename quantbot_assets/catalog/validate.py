"""Validating one run directory before it enters the catalog (no database).

`validate_run_dir` returns a `ValidRun` ready to register, a `Rejection`
with a stable reason code, or None for a run that has no marker yet (in
progress, or killed outright: never catalogued). It reads `run.json` and each
artifact's Parquet footer only, never whole Parquet files.
"""

from __future__ import annotations

import base64
import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from quantbot_assets.catalog.scan import MARKERS
from quantbot_assets.rundir import (
    FAILED_MARKER,
    MANIFEST_FILE,
    MONTH_PATTERN,
    RUN_DIR_PREFIX,
    SUCCESS_MARKER,
    RunManifest,
    check_run_id,
)
from quantbot_assets.schemas import (
    ARTIFACT_SCHEMAS,
    KNOWN_SCHEMA_VERSIONS,
    MANIFEST_VERSION,
    schema_for_version,
)

KNOWN_MANIFEST_VERSIONS = frozenset({MANIFEST_VERSION})
EXPECTED_STATUS = {SUCCESS_MARKER: "completed", FAILED_MARKER: "failed"}


class RejectReason(StrEnum):
    """Why a run directory was refused (stored in `backtest_rejected_runs.reason`)."""

    BAD_RUN_DIR_NAME = "bad_run_dir_name"
    OUTSIDE_ROOT = "outside_root"
    SYMLINK = "symlink"
    CONFLICTING_MARKERS = "conflicting_markers"
    MANIFEST_UNREADABLE = "manifest_unreadable"
    MANIFEST_INVALID = "manifest_invalid"
    RUN_ID_MISMATCH = "run_id_mismatch"
    STATUS_MISMATCH = "status_mismatch"
    UNKNOWN_SCHEMA_VERSION = "unknown_schema_version"
    UNKNOWN_ARTIFACT_TYPE = "unknown_artifact_type"
    UNSAFE_ARTIFACT_PATH = "unsafe_artifact_path"
    MISSING_ARTIFACT = "missing_artifact"
    CORRUPT_ARTIFACT = "corrupt_artifact"
    SCHEMA_MISMATCH = "schema_mismatch"
    ROW_COUNT_MISMATCH = "row_count_mismatch"
    DUPLICATE_RUN_ID = "duplicate_run_id"


@dataclass(frozen=True)
class Rejection:
    run_dir: Path
    reason: RejectReason
    detail: str
    run_id: str | None = None
    marker: str | None = None

    def describe(self) -> str:
        return f"{self.reason.value}: {self.detail}"


@dataclass(frozen=True)
class ValidArtifact:
    artifact_type: str
    path: str  # absolute
    relative_path: str
    rows: int
    bytes: int
    schema_version: str
    asset_key: str | None
    partition_key: str | None


@dataclass(frozen=True)
class ValidRun:
    run_dir: Path  # absolute
    marker: str
    manifest: RunManifest
    created_at: datetime  # naive UTC
    started_at: datetime | None
    completed_at: datetime | None
    artifacts: tuple[ValidArtifact, ...]


class _Reject(Exception):
    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def parse_utc(value: str, field: str) -> datetime:
    """An ISO-8601 timestamp as a naive UTC datetime (naive input is taken as UTC)."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise _Reject(
            RejectReason.MANIFEST_INVALID, f"{field} {value!r} is not an ISO-8601 timestamp"
        ) from exc
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except OSError:
        return None


def _check_location(root: str, run_dir: str) -> None:
    # Path checks use plain strings and one lstat per component: with no
    # symlink and no '..' anywhere below the root, the path cannot leave it.
    rel = os.path.relpath(run_dir, root)
    if rel == "." or rel == ".." or rel.startswith("../") or os.path.isabs(rel):
        raise _Reject(RejectReason.OUTSIDE_ROOT, f"{run_dir} is not inside the runs root {root}")
    parts = rel.split(os.sep)
    month_stat = _lstat(os.path.join(root, parts[0]))
    if month_stat is not None and stat.S_ISLNK(month_stat.st_mode):
        raise _Reject(RejectReason.SYMLINK, f"month folder {parts[0]} is a symbolic link")
    if len(parts) != 2 or not MONTH_PATTERN.match(parts[0]):
        raise _Reject(
            RejectReason.BAD_RUN_DIR_NAME, f"{rel} is not YYYY-MM/{RUN_DIR_PREFIX}<run id>"
        )
    run_stat = _lstat(run_dir)
    if run_stat is not None and stat.S_ISLNK(run_stat.st_mode):
        raise _Reject(RejectReason.SYMLINK, f"run directory {rel} is a symbolic link")
    name = parts[1]
    try:
        if not name.startswith(RUN_DIR_PREFIX):
            raise ValueError(name)
        check_run_id(name[len(RUN_DIR_PREFIX) :])
    except ValueError as exc:
        raise _Reject(
            RejectReason.BAD_RUN_DIR_NAME, f"{name!r} is not {RUN_DIR_PREFIX}<safe run id>"
        ) from exc
    if run_stat is None or not stat.S_ISDIR(run_stat.st_mode):
        raise _Reject(RejectReason.BAD_RUN_DIR_NAME, f"{rel} is not a directory")


def _read_manifest(run_dir: str) -> RunManifest:
    path = os.path.join(run_dir, MANIFEST_FILE)
    try:
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode):
            raise _Reject(RejectReason.SYMLINK, f"{MANIFEST_FILE} is a symbolic link")
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise _Reject(
            RejectReason.MANIFEST_UNREADABLE, f"{MANIFEST_FILE}: {exc.strerror or exc}"
        ) from exc
    try:
        return RunManifest.model_validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(document)"
        raise _Reject(
            RejectReason.MANIFEST_INVALID, f"{MANIFEST_FILE} field {where}: {first['msg']}"
        ) from exc


def _check_version(artifact_type: str, version: str) -> None:
    known = KNOWN_SCHEMA_VERSIONS.get(artifact_type)
    if known is None:
        raise _Reject(
            RejectReason.UNKNOWN_ARTIFACT_TYPE, f"unknown artifact type {artifact_type!r}"
        )
    if version not in known:
        raise _Reject(
            RejectReason.UNKNOWN_SCHEMA_VERSION,
            f"{artifact_type} schema version {version!r} (known: {', '.join(sorted(known))})",
        )


ARROW_SCHEMA_KEY = b"ARROW:schema"


@cache
def _reference_arrow_schema_blob(artifact_type: str) -> bytes:
    """The footer's serialized Arrow schema of a file written with the canonical schema."""
    sink = pa.BufferOutputStream()
    pq.write_table(ARTIFACT_SCHEMAS[artifact_type].empty_table(), sink)
    metadata = pq.read_metadata(pa.BufferReader(sink.getvalue())).metadata
    return metadata[ARROW_SCHEMA_KEY]


def _file_arrow_schema(metadata: pq.FileMetaData) -> pa.Schema:
    blob = (metadata.metadata or {}).get(ARROW_SCHEMA_KEY)
    if blob is None:  # not written by Arrow: derive it from the Parquet schema
        return metadata.schema.to_arrow_schema()
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(blob)))


def _schema_problem(artifact_type: str, schema: pa.Schema, version: str) -> str | None:
    """What is wrong with a file's columns for its schema version (extra columns are
    allowed; columns added after that version may be missing)."""
    for field in schema_for_version(artifact_type, version):
        index = schema.get_field_index(field.name)
        if index < 0:
            return f"lacks column {field.name!r}"
        if schema.field(index).type != field.type:
            return f"column {field.name!r} is {schema.field(index).type}, expected {field.type}"
    return None


def _check_artifact(run_dir: str, artifact_type: str, manifest: RunManifest) -> ValidArtifact:
    entry = manifest.artifacts[artifact_type]
    _check_version(artifact_type, entry.schema_version)
    rel = entry.path
    parts = rel.split("/")
    if not rel or rel.startswith("/") or "\\" in rel or ".." in parts or "" in parts:
        raise _Reject(
            RejectReason.UNSAFE_ARTIFACT_PATH,
            f"{artifact_type} path {rel!r} is not a plain relative path",
        )
    current = run_dir
    info: os.stat_result | None = None
    for part in parts:
        current = os.path.join(current, part)
        info = _lstat(current)
        if info is None:
            raise _Reject(RejectReason.MISSING_ARTIFACT, f"{artifact_type} file {rel!r} is missing")
        if stat.S_ISLNK(info.st_mode):
            raise _Reject(
                RejectReason.SYMLINK, f"{artifact_type} path {rel!r} goes through a symbolic link"
            )
    if info is None or not stat.S_ISREG(info.st_mode):
        raise _Reject(
            RejectReason.MISSING_ARTIFACT, f"{artifact_type} path {rel!r} is not a regular file"
        )
    label = f"{artifact_type} file {rel!r}"
    try:
        # The footer only: row count and columns without reading the data.
        metadata = pq.read_metadata(pa.OSFile(current))
        # Fast path: the footer carries byte-for-byte the canonical schema
        # (building pyarrow's ParquetSchema wrapper costs more than the read).
        blob = (metadata.metadata or {}).get(ARROW_SCHEMA_KEY)
        if blob is not None and blob == _reference_arrow_schema_blob(artifact_type):
            problem = None
        else:
            problem = _schema_problem(
                artifact_type, _file_arrow_schema(metadata), entry.schema_version
            )
    except Exception as exc:  # pyarrow raises several types for a bad footer
        raise _Reject(
            RejectReason.CORRUPT_ARTIFACT, f"{label} is not readable Parquet: {exc}"
        ) from exc
    if problem is not None:
        raise _Reject(RejectReason.SCHEMA_MISMATCH, f"{label} {problem}")
    if metadata.num_rows != entry.rows:
        raise _Reject(
            RejectReason.ROW_COUNT_MISMATCH,
            f"{label} has {metadata.num_rows} rows, manifest says {entry.rows}",
        )
    return ValidArtifact(
        artifact_type=artifact_type,
        path=current,
        relative_path=rel,
        rows=metadata.num_rows,
        bytes=info.st_size,
        schema_version=entry.schema_version,
        asset_key=entry.asset_key,
        partition_key=entry.partition_key,
    )


def _marker(run_dir: str) -> str | None:
    found = []
    for marker in MARKERS:
        info = _lstat(os.path.join(run_dir, marker))
        if info is not None:
            if stat.S_ISLNK(info.st_mode):
                raise _Reject(RejectReason.SYMLINK, f"{marker} is a symbolic link")
            found.append(marker)
    if len(found) > 1:
        raise _Reject(RejectReason.CONFLICTING_MARKERS, "both _SUCCESS and _FAILED are present")
    return found[0] if found else None


def _validate(root: str, run_dir: str) -> ValidRun | None:
    _check_location(root, run_dir)
    marker = _marker(run_dir)
    if marker is None:
        return None
    manifest = _read_manifest(run_dir)
    if manifest.schema_version not in KNOWN_MANIFEST_VERSIONS:
        raise _Reject(
            RejectReason.UNKNOWN_SCHEMA_VERSION,
            f"manifest schema version {manifest.schema_version!r}",
        )
    dir_run_id = os.path.basename(run_dir)[len(RUN_DIR_PREFIX) :]
    if manifest.run_id != dir_run_id:
        raise _Reject(
            RejectReason.RUN_ID_MISMATCH,
            f"run.json says {manifest.run_id!r}, directory says {dir_run_id!r}",
        )
    if manifest.status != EXPECTED_STATUS[marker]:
        raise _Reject(
            RejectReason.STATUS_MISMATCH, f"{marker} present but status is {manifest.status!r}"
        )
    for artifact_type, version in manifest.schema_versions.items():
        _check_version(artifact_type, version)
    if marker == SUCCESS_MARKER:
        missing = [
            name
            for name in manifest.planned_artifacts
            if name in ARTIFACT_SCHEMAS and name not in manifest.artifacts
        ]
        if missing:
            raise _Reject(
                RejectReason.MISSING_ARTIFACT,
                f"planned artifacts not in run.json: {', '.join(missing)}",
            )
    artifacts = tuple(
        _check_artifact(run_dir, name, manifest) for name in sorted(manifest.artifacts)
    )
    return ValidRun(
        run_dir=Path(run_dir),
        marker=marker,
        manifest=manifest,
        created_at=parse_utc(manifest.created_at, "created_at"),
        started_at=parse_utc(manifest.started_at, "started_at") if manifest.started_at else None,
        completed_at=parse_utc(manifest.completed_at, "completed_at")
        if manifest.completed_at
        else None,
        artifacts=artifacts,
    )


def validate_run_dir(runs_root: Path, run_dir: Path) -> ValidRun | Rejection | None:
    """Check one run directory; None when it has no completion marker yet."""
    root = os.path.abspath(runs_root)
    path = os.path.abspath(run_dir)
    try:
        return _validate(root, path)
    except _Reject as rejected:
        markers = [m for m in MARKERS if os.path.lexists(os.path.join(path, m))]
        name = os.path.basename(path)
        run_id = name[len(RUN_DIR_PREFIX) :] if name.startswith(RUN_DIR_PREFIX) else None
        return Rejection(
            Path(path), rejected.reason, rejected.detail, run_id, markers[0] if markers else None
        )
