"""Validating one run directory before it enters the catalog (no database).

`validate_run_dir` returns a `ValidRun` ready to register, a `Rejection`
with a stable reason code, or None for a run that is not finished yet: no
marker (in progress, or killed outright: never catalogued), or `_SUCCESS`
while a check the run planned has no recorded outcome yet (its checks run
after the marker; it is looked at again later, not rejected). It reads `run.json` and each
artifact's Parquet footer only, never whole Parquet files.
"""

from __future__ import annotations

import base64
import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cache
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from quantbot_assets.catalog.scan import MARKERS
from quantbot_assets.params import params_hash
from quantbot_assets.rundir import (
    CHECKS_DIR,
    FAILED_MARKER,
    MANIFEST_FILE,
    MAX_MANIFEST_BYTES,
    MONTH_PATTERN,
    RUN_DIR_PREFIX,
    SUCCESS_MARKER,
    CheckRecord,
    RunManifest,
    check_run_id,
)
from quantbot_assets.schemas import (
    ARTIFACT_SCHEMAS,
    KNOWN_MANIFEST_VERSIONS,
    KNOWN_SCHEMA_VERSIONS,
    schema_for,
)

EXPECTED_STATUS = {SUCCESS_MARKER: "completed", FAILED_MARKER: "failed"}
# Timestamps a run can have: not before this, not later than a day from now
# (a far-future `completed_at` would otherwise win every "latest" forever).
EARLIEST_TIMESTAMP = datetime(2000, 1, 1, tzinfo=UTC).replace(tzinfo=None)  # naive UTC
FUTURE_TOLERANCE = timedelta(days=1)
# Counts are stored as BIGINT.
MAX_COUNT = 2**63 - 1


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
    NOT_A_REGULAR_FILE = "not_a_regular_file"
    MANIFEST_TOO_LARGE = "manifest_too_large"
    TIMESTAMP_OUT_OF_RANGE = "timestamp_out_of_range"
    VALUE_OUT_OF_RANGE = "value_out_of_range"
    INVALID_ROW = "invalid_row"
    CHECK_RESULT_INVALID = "check_result_invalid"
    VALIDATION_ERROR = "validation_error"


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
    partition_keys: tuple[str, ...]
    params_hash: str


@dataclass(frozen=True)
class ValidRun:
    run_dir: Path  # absolute
    marker: str
    manifest: RunManifest
    created_at: datetime  # naive UTC
    started_at: datetime | None
    completed_at: datetime | None
    artifacts: tuple[ValidArtifact, ...]
    # Outcomes of the planned checks (None: a failed run, or a manifest before 1.2.0)
    checks: tuple[CheckRecord, ...] | None = None


class _Reject(Exception):
    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def parse_utc(value: str, field: str, now: datetime | None = None) -> datetime:
    """An ISO-8601 timestamp as a naive UTC datetime (naive input is taken as UTC).

    Refuses (with `timestamp_out_of_range`) what lies before 2000 or more than
    a day after `now` (default: the current time).
    """
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise _Reject(
            RejectReason.MANIFEST_INVALID, f"{field} {value!r} is not an ISO-8601 timestamp"
        ) from exc
    try:
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    except OverflowError as exc:  # 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        raise _Reject(
            RejectReason.TIMESTAMP_OUT_OF_RANGE, f"{field} {value!r} is out of range"
        ) from exc
    latest = (now or datetime.now(UTC).replace(tzinfo=None)) + FUTURE_TOLERANCE
    if not EARLIEST_TIMESTAMP <= parsed <= latest:
        raise _Reject(
            RejectReason.TIMESTAMP_OUT_OF_RANGE,
            f"{field} {value!r} is not between {EARLIEST_TIMESTAMP:%Y-%m-%d} and a day from now",
        )
    return parsed


def _check_count(value: int | None, what: str) -> None:
    if value is not None and not 0 <= value <= MAX_COUNT:
        raise _Reject(
            RejectReason.VALUE_OUT_OF_RANGE, f"{what} {value} is not between 0 and 2**63-1"
        )


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


def _read_small_file(path: str, label: str) -> bytes:
    """The bytes of a small regular file: no symlink, no blocking open, a bounded read."""
    try:
        info = os.lstat(path)
    except OSError as exc:
        raise _Reject(RejectReason.MANIFEST_UNREADABLE, f"{label}: {exc.strerror or exc}") from exc
    if stat.S_ISLNK(info.st_mode):
        raise _Reject(RejectReason.SYMLINK, f"{label} is a symbolic link")
    if not stat.S_ISREG(info.st_mode):  # a FIFO would block the reader forever
        raise _Reject(RejectReason.NOT_A_REGULAR_FILE, f"{label} is not a regular file")
    if info.st_size > MAX_MANIFEST_BYTES:
        raise _Reject(
            RejectReason.MANIFEST_TOO_LARGE,
            f"{label} has {info.st_size} bytes (at most {MAX_MANIFEST_BYTES})",
        )
    try:
        # No symlink, no blocking open, and a bounded read even if the file was
        # swapped or grew since the lstat.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise _Reject(RejectReason.NOT_A_REGULAR_FILE, f"{label} is not a regular file")
            chunks = []
            left = MAX_MANIFEST_BYTES + 1
            while left > 0:
                chunk = os.read(fd, left)
                if not chunk:
                    break
                chunks.append(chunk)
                left -= len(chunk)
            data = b"".join(chunks)
        finally:
            os.close(fd)
    except OSError as exc:
        raise _Reject(RejectReason.MANIFEST_UNREADABLE, f"{label}: {exc.strerror or exc}") from exc
    if len(data) > MAX_MANIFEST_BYTES:
        raise _Reject(
            RejectReason.MANIFEST_TOO_LARGE, f"{label} is over {MAX_MANIFEST_BYTES} bytes"
        )
    return data


def _read_manifest(run_dir: str) -> RunManifest:
    data = _read_small_file(os.path.join(run_dir, MANIFEST_FILE), MANIFEST_FILE)
    try:
        manifest = RunManifest.model_validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(document)"
        raise _Reject(
            RejectReason.MANIFEST_INVALID, f"{MANIFEST_FILE} field {where}: {first['msg']}"
        ) from exc
    _check_count(manifest.dataset.calls_count, "dataset.calls_count")
    for name, entry in manifest.artifacts.items():
        _check_count(entry.rows, f"artifacts.{name}.rows")
        _check_count(entry.bytes, f"artifacts.{name}.bytes")
    return manifest


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
def _reference_arrow_schema_blob(artifact_type: str, version: str) -> bytes:
    """The footer's serialized Arrow schema of a file written with the canonical schema."""
    sink = pa.BufferOutputStream()
    pq.write_table(schema_for(artifact_type, version).empty_table(), sink)
    metadata = pq.read_metadata(pa.BufferReader(sink.getvalue())).metadata
    return metadata[ARROW_SCHEMA_KEY]


def _file_arrow_schema(metadata: pq.FileMetaData) -> pa.Schema:
    blob = (metadata.metadata or {}).get(ARROW_SCHEMA_KEY)
    if blob is None:  # not written by Arrow: derive it from the Parquet schema
        return metadata.schema.to_arrow_schema()
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(blob)))


def _schema_problem(artifact_type: str, version: str, schema: pa.Schema) -> str | None:
    """What is wrong with a file's columns (extra columns are allowed)."""
    for field in schema_for(artifact_type, version):
        index = schema.get_field_index(field.name)
        if index < 0:
            return f"lacks column {field.name!r}"
        if schema.field(index).type != field.type:
            return f"column {field.name!r} is {schema.field(index).type}, expected {field.type}"
    return None


_PROC_FD = os.path.isdir("/proc/self/fd")


def _read_footer(path: str) -> pq.FileMetaData:
    """The Parquet footer of a regular file (no symlink followed, no blocking open)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
        if _PROC_FD:  # Arrow's own file reader on the inode just checked (fastest)
            return pq.read_metadata(pa.OSFile(f"/proc/self/fd/{fd}"))
        with open(fd, "rb", closefd=False) as handle:
            return pq.read_metadata(handle)
    finally:
        os.close(fd)


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
        metadata = _read_footer(current)
        # Fast path: the footer carries byte-for-byte the canonical schema
        # (building pyarrow's ParquetSchema wrapper costs more than the read).
        blob = (metadata.metadata or {}).get(ARROW_SCHEMA_KEY)
        if blob is not None and blob == _reference_arrow_schema_blob(
            artifact_type, entry.schema_version
        ):
            problem = None
        else:
            problem = _schema_problem(
                artifact_type, entry.schema_version, _file_arrow_schema(metadata)
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
        partition_keys=tuple(entry.all_partition_keys()),
        params_hash=entry.params_hash or params_hash(artifact_type, manifest.parameters),
    )


def _check_results(run_dir: str, manifest: RunManifest) -> tuple[CheckRecord, ...] | None:
    """The outcome of every planned check; None while one is missing (the run is pending)."""
    planned = manifest.planned_checks or []
    checks_dir = os.path.join(run_dir, CHECKS_DIR)
    if planned:
        info = _lstat(checks_dir)
        if info is None:
            return None
        if stat.S_ISLNK(info.st_mode):
            raise _Reject(RejectReason.SYMLINK, f"{CHECKS_DIR} is a symbolic link")
    results = []
    for name in sorted(set(planned)):
        label = f"{CHECKS_DIR}/{name}.json"
        path = os.path.join(checks_dir, f"{name}.json")
        if _lstat(path) is None:
            return None
        data = _read_small_file(path, label)
        try:
            record = CheckRecord.model_validate_json(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "(document)"
            raise _Reject(
                RejectReason.CHECK_RESULT_INVALID, f"{label} field {where}: {first['msg']}"
            ) from exc
        if record.check_name != name:
            raise _Reject(
                RejectReason.CHECK_RESULT_INVALID,
                f"{label} names check {record.check_name!r}",
            )
        results.append(record)
    return tuple(results)


def _marker(run_dir: str) -> str | None:
    found = []
    for marker in MARKERS:
        info = _lstat(os.path.join(run_dir, marker))
        if info is not None:
            if stat.S_ISLNK(info.st_mode):
                raise _Reject(RejectReason.SYMLINK, f"{marker} is a symbolic link")
            if not stat.S_ISREG(info.st_mode):
                raise _Reject(RejectReason.NOT_A_REGULAR_FILE, f"{marker} is not a regular file")
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
    checks: tuple[CheckRecord, ...] | None = None
    if marker == SUCCESS_MARKER and manifest.planned_checks is not None:
        checks = _check_results(run_dir, manifest)
        if checks is None:
            return None  # complete only once every planned check has an outcome
    artifacts = tuple(
        _check_artifact(run_dir, name, manifest) for name in sorted(manifest.artifacts)
    )
    now = datetime.now(UTC).replace(tzinfo=None)
    return ValidRun(
        run_dir=Path(run_dir),
        marker=marker,
        manifest=manifest,
        created_at=parse_utc(manifest.created_at, "created_at", now),
        started_at=parse_utc(manifest.started_at, "started_at", now)
        if manifest.started_at
        else None,
        completed_at=parse_utc(manifest.completed_at, "completed_at", now)
        if manifest.completed_at
        else None,
        artifacts=artifacts,
        checks=checks,
    )


def printable(text: str) -> str:
    """`text` safe to store and print on one line: undecodable bytes of file names
    and control characters escaped."""
    try:  # file names carry undecodable bytes as surrogates: show them as \xNN
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def validate_run_dir(runs_root: Path, run_dir: Path) -> ValidRun | Rejection | None:
    """Check one run directory; None when it has no completion marker yet.

    Never raises for anything found on disk: an unexpected error becomes a
    `validation_error` rejection naming the exception.
    """
    root = os.path.abspath(runs_root)
    path = os.path.abspath(run_dir)
    try:
        return _validate(root, path)
    except _Reject as rejected:
        reason, detail = rejected.reason, rejected.detail
    except Exception as exc:  # anything else about this directory: a rejection, not a crash
        reason = RejectReason.VALIDATION_ERROR
        detail = f"{type(exc).__name__}: {str(exc)[:500]}"
    return rejection(path, reason, detail)


def rejection(path: str, reason: RejectReason, detail: str) -> Rejection:
    """A rejection of the run directory at `path` (run id and marker from the disk)."""
    markers = [m for m in MARKERS if os.path.lexists(os.path.join(path, m))]
    name = os.path.basename(path)
    run_id = name[len(RUN_DIR_PREFIX) :] if name.startswith(RUN_DIR_PREFIX) else None
    return Rejection(
        Path(path),
        reason,
        printable(detail),
        printable(run_id) if run_id is not None else None,
        markers[0] if markers else None,
    )
