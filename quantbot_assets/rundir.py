"""The run directory: layout, the `run.json` manifest, atomic writes, markers.

Plain Python (no Dagster): the IO manager writes run directories with it and
the catalog reads them with it, so both agree on one definition.

    runs/YYYY-MM/run_id=<id>/run.json, <artifact files>, _SUCCESS | _FAILED,
                             checks/<check name>.json

`_SUCCESS` is written when the last planned artifact is in place; the run's
asset checks run after it (in the same Dagster run) and each writes its
outcome to `checks/<name>.json`. A run is complete for the catalog when it
has `_SUCCESS` and an outcome for every check in `planned_checks`.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, Field, field_validator

from quantbot_assets.schemas import MANIFEST_VERSION

MANIFEST_FILE = "run.json"
SUCCESS_MARKER = "_SUCCESS"
FAILED_MARKER = "_FAILED"
CHECKS_DIR = "checks"
# A real run.json is a few kilobytes; anything larger is refused unread.
MAX_MANIFEST_BYTES = 1 << 20
CHECK_OUTCOMES = ("passed", "failed", "error", "not_run")
RUN_DIR_PREFIX = "run_id="
# A run id becomes a path part: letters, digits, '-', '_' and '.' only, no '..'.
# Matched whole (\Z, not $: "$" also matches before a trailing newline).
RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")
MONTH_PATTERN = re.compile(r"^\d{4}-(0[1-9]|1[0-2])\Z")

RunType = Literal["path-only", "policy", "optimization"]
RunStatus = Literal["pending", "running", "completed", "failed"]


class ArtifactEntry(BaseModel):
    """One artifact file of a run, as recorded in the manifest."""

    path: str  # relative to the run directory, e.g. "truth/paths.parquet"
    rows: int
    bytes: int
    schema_version: str
    asset_key: str | None = None
    partition_key: str | None = None  # the partition, when the file holds exactly one
    partition_keys: list[str] = Field(default_factory=list)  # every partition the file holds
    params_hash: str | None = None  # the parameter set (quantbot_assets.params)

    def all_partition_keys(self) -> list[str]:
        """Every partition of the file (manifests before 1.1 name one in `partition_key`)."""
        if self.partition_keys:
            return list(self.partition_keys)
        return [self.partition_key] if self.partition_key is not None else []


class FeaturesEntry(BaseModel):
    """Prepared candle windows a run stored for reuse (`features/`)."""

    path: str  # relative to the run directory
    key: str  # hash of the window parameters, the calls and the candle source
    interval: str
    horizon_ms: int
    entry_delay_ms: int
    series: int
    bars: int
    bytes: int


class DatasetWindow(BaseModel):
    from_: str | None = Field(default=None, alias="from")
    to: str | None = None
    interval: str | None = None
    calls_count: int | None = None

    model_config = {"populate_by_name": True}


class RunManifest(BaseModel):
    """The `run.json` of one run directory."""

    schema_version: str = MANIFEST_VERSION
    run_id: str
    run_type: RunType
    status: RunStatus = "pending"
    created_at: str
    started_at: str | None = None
    completed_at: str | None = None
    git_commit: str | None = None
    git_branch: str | None = None
    git_dirty: bool | None = None
    dataset: DatasetWindow = Field(default_factory=DatasetWindow)
    parameters: dict[str, Any] = Field(default_factory=dict)
    config_hash: str | None = None
    # 1.2.0: the content of the data the run read (truth_identity.DataFingerprint):
    # `calls_hash` of its calls (and rejected rows), `candles_hash` of the bars its calls'
    # windows read, `data_fingerprint` of both. Same commit, config_hash and fingerprint:
    # the same artifacts.
    data_fingerprint: str | None = None
    calls_hash: str | None = None
    candles_hash: str | None = None
    job_name: str | None = None
    # asset key -> every partition key the run materialized for it
    partition_keys: dict[str, list[str]] = Field(default_factory=dict)
    planned_artifacts: list[str] = Field(default_factory=list)
    schema_versions: dict[str, str] = Field(default_factory=dict)
    artifacts: dict[str, ArtifactEntry] = Field(default_factory=dict)
    timing: dict[str, float] = Field(default_factory=dict)  # phase -> milliseconds
    features: list[FeaturesEntry] = Field(default_factory=list)
    # day -> the `paths` file (absolute) whose truth layer this run's trades used
    truth_sources: dict[str, str] = Field(default_factory=dict)
    # Asset checks the run will record in checks/ (None: a manifest before 1.2.0)
    planned_checks: list[str] | None = None
    error: str | None = None

    @field_validator("partition_keys", mode="before")
    @classmethod
    def _one_key_is_a_list(cls, value: Any) -> Any:
        # Manifest 1.0.0 recorded one partition key per asset.
        if isinstance(value, dict):
            return {k: [v] if isinstance(v, str) else v for k, v in value.items()}
        return value

    def to_json(self) -> str:
        return self.model_dump_json(indent=2, by_alias=True)


def iso_utc(moment: datetime) -> str:
    """`2024-01-03T04:05:06.789Z`: the manifest's time format."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_now_iso() -> str:
    return iso_utc(datetime.now(UTC))


def check_run_id(run_id: str) -> str:
    """Return `run_id` if it is safe as a path part, else raise ValueError."""
    if not RUN_ID_PATTERN.match(run_id) or ".." in run_id:
        raise ValueError(f"run id {run_id!r} is not a safe directory name")
    return run_id


def run_dir_path(runs_root: Path, run_id: str, created: datetime) -> Path:
    """`runs_root/YYYY-MM/run_id=<id>` for a run created at `created` (UTC)."""
    month = created.astimezone(UTC).strftime("%Y-%m")
    return Path(runs_root) / month / f"{RUN_DIR_PREFIX}{check_run_id(run_id)}"


@cache
def _file_mode() -> int:
    """0o666 less the process umask: what a plain open() would have given."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, _file_mode())  # mkstemp creates 0600; readers are other users too
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_parquet(table: pa.Table, path: Path) -> int:
    """Write `table` as zstd Parquet under a temporary name, rename it; return bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, _file_mode())
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path.stat().st_size


def read_manifest(run_dir: Path) -> RunManifest:
    """Parse `run_dir/run.json`; raises OSError or pydantic.ValidationError."""
    return RunManifest.model_validate_json((Path(run_dir) / MANIFEST_FILE).read_bytes())


def write_manifest(run_dir: Path, manifest: RunManifest) -> None:
    atomic_write_bytes(Path(run_dir) / MANIFEST_FILE, manifest.to_json().encode())


@contextmanager
def locked_manifest(
    run_dir: Path, default: RunManifest | Callable[[], RunManifest] | None = None
) -> Iterator[RunManifest]:
    """Read-modify-write `run.json` under an exclusive lock (steps may run in parallel).

    Yields the current manifest (or `default`, or what calling it returns,
    when there is none yet); the manifest is written back when the block
    exits without an exception.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    # Lock the directory itself: no lock file is left in the run directory.
    fd = os.open(run_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if (run_dir / MANIFEST_FILE).exists():
            manifest = read_manifest(run_dir)
        elif default is not None:
            manifest = default() if callable(default) else default
        else:
            raise FileNotFoundError(run_dir / MANIFEST_FILE)
        yield manifest
        write_manifest(run_dir, manifest)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


class CheckRecord(BaseModel):
    """The outcome of one asset check of a run (`checks/<check_name>.json`)."""

    check_name: str
    asset_key: str | None = None
    outcome: Literal["passed", "failed", "error", "not_run"]
    passed: bool
    severity: str | None = None
    detail: str | None = None  # the error of a check that raised, why one did not run
    metadata: dict[str, str] = Field(default_factory=dict)
    recorded_at: str


def check_record_path(run_dir: Path, check_name: str) -> Path:
    return Path(run_dir) / CHECKS_DIR / f"{check_name}.json"


def write_check_record(run_dir: Path, record: CheckRecord) -> None:
    atomic_write_bytes(
        check_record_path(run_dir, record.check_name), record.model_dump_json(indent=2).encode()
    )


def recorded_checks(run_dir: Path) -> set[str]:
    """Names of the checks with a record in `run_dir/checks/` (names only, nothing read)."""
    try:
        names = os.listdir(Path(run_dir) / CHECKS_DIR)
    except OSError:
        return set()
    return {n[: -len(".json")] for n in names if n.endswith(".json") and not n.startswith(".")}


def checks_pending(run_dir: Path) -> bool:
    """Whether the run still waits for the outcome of a check it planned.

    Cheap and never blocking (the catalog sensor asks on every tick): False
    whenever `run.json` cannot be read as a plain manifest, so that
    validation decides about such a run.
    """
    try:
        fd = os.open(Path(run_dir) / MANIFEST_FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_MANIFEST_BYTES:
            return False
        data = b""
        while len(data) <= MAX_MANIFEST_BYTES:
            chunk = os.read(fd, MAX_MANIFEST_BYTES + 1 - len(data))
            if not chunk:
                break
            data += chunk
    except OSError:
        return False
    finally:
        os.close(fd)
    try:
        planned = RunManifest.model_validate_json(data).planned_checks
    except ValueError:
        return False
    return bool(planned and set(planned) - recorded_checks(run_dir))


def record_checks_not_run(run_dir: Path, reason: str) -> list[str]:
    """Record `not_run` for every planned check of a `_SUCCESS` run that has no record yet.

    For a run that ended (killed, canceled, stopped) after its artifacts and
    before its checks: the catalog then registers it with those checks as not
    run instead of waiting for them forever. Returns the checks recorded.
    """
    run_dir = Path(run_dir)
    if not (run_dir / SUCCESS_MARKER).exists():
        return []
    try:
        planned = read_manifest(run_dir).planned_checks or []
    except (OSError, ValueError):
        return []
    missing = sorted(set(planned) - recorded_checks(run_dir))
    now = utc_now_iso()
    for name in missing:
        record = CheckRecord(
            check_name=name, outcome="not_run", passed=False, detail=reason, recorded_at=now
        )
        write_check_record(run_dir, record)
    return missing


def write_marker(run_dir: Path, marker: str, text: str = "") -> None:
    atomic_write_bytes(Path(run_dir) / marker, text.encode())


def json_dumps_canonical(value: Any) -> str:
    """Stable JSON for hashing and storing parameters."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def config_hash(parameters: dict[str, Any]) -> str:
    """Identity from content: the same parameters give the same hash."""
    return hashlib.sha256(json_dumps_canonical(parameters).encode()).hexdigest()[:16]
