"""Atomic writes and the manifest model of `quantbot_assets.rundir`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from quantbot_assets import rundir


def test_atomic_parquet_write_keeps_the_old_file_when_a_write_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "truth" / "paths.parquet"
    rundir.atomic_write_parquet(pa.table({"x": [1, 2, 3]}), target)

    def broken_write(table: pa.Table, where: str, **kwargs: object) -> None:
        Path(where).write_bytes(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(rundir.pq, "write_table", broken_write)
    with pytest.raises(OSError, match="disk full"):
        rundir.atomic_write_parquet(pa.table({"x": [9]}), target)
    assert pq.read_table(target).column("x").to_pylist() == [1, 2, 3]
    assert [p.name for p in target.parent.iterdir()] == ["paths.parquet"]


def test_atomic_bytes_write_leaves_no_temporary_files(tmp_path: Path) -> None:
    rundir.atomic_write_bytes(tmp_path / "run.json", b"{}")
    rundir.atomic_write_bytes(tmp_path / "run.json", b'{"a": 1}')
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]
    assert (tmp_path / "run.json").read_bytes() == b'{"a": 1}'


@pytest.mark.parametrize("bad", ["../escape", "a/b", "", ".hidden", "x" * 200, "a..b"])
def test_unsafe_run_ids_are_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="not a safe directory name"):
        rundir.run_dir_path(tmp_path, bad, datetime(2024, 1, 5, tzinfo=UTC))


def test_run_dir_path_uses_the_creation_month_in_utc(tmp_path: Path) -> None:
    created = datetime(2024, 2, 29, 23, 30, tzinfo=UTC)
    assert rundir.run_dir_path(tmp_path, "abc-1", created) == tmp_path / "2024-02" / "run_id=abc-1"


def test_locked_manifest_round_trip(tmp_path: Path) -> None:
    default = rundir.RunManifest(run_id="r1", run_type="path-only", created_at=rundir.utc_now_iso())
    with rundir.locked_manifest(tmp_path, default) as manifest:
        manifest.status = "running"
    with rundir.locked_manifest(tmp_path) as manifest:
        assert manifest.status == "running"
        manifest.dataset.from_ = "2024-01-01"
    assert '"from": "2024-01-01"' in (tmp_path / "run.json").read_text()
    assert rundir.read_manifest(tmp_path).dataset.from_ == "2024-01-01"


def test_written_files_are_readable_by_others_like_a_plain_open(tmp_path: Path) -> None:
    rundir.atomic_write_bytes(tmp_path / "run.json", b"{}")
    rundir.atomic_write_parquet(pa.table({"x": [1]}), tmp_path / "a.parquet")
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    for name in ("run.json", "a.parquet"):
        assert (tmp_path / name).stat().st_mode & 0o777 == plain.stat().st_mode & 0o777
