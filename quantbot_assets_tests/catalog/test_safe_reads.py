"""Exports read the file they opened: no gap between a path check and the read.

A hostile user of the runs root may swap a catalogued artifact, its folder or
its run directory for a symbolic link to data outside the root at any time,
including while the exports are refreshed. The rows exported must come from
the catalogued file or not at all.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from quantbot_assets.catalog import exports as exports_module
from quantbot_assets.catalog.exports import refresh_exports
from quantbot_assets.catalog.register import sync_catalog
from quantbot_assets.catalog.safe_open import UnsafePath, open_below
from quantbot_assets_tests.catalog.runbuilder import build_run, empty_table, paths_table


def _tables(run_id: str, caller: str) -> dict:
    return {
        "alerts": empty_table("alerts"),
        "paths": paths_table(run_id, "2024-01-03", {caller: [(True, False, False, 2.5, -3.0)] * 3}),
    }


def _callers(exports: Path) -> set[str]:
    return set(pq.read_table(exports / "paths.parquet").column("caller_name").to_pylist())


def _outside(tmp_path: Path) -> Path:
    path = tmp_path / "outside" / "paths.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(_tables("x", "OUTSIDE")["paths"], path)
    return path


@pytest.mark.parametrize("swapped", ["file", "folder", "run_dir", "month"])
def test_open_below_refuses_a_symlink_at_any_level(tmp_path: Path, swapped: str) -> None:
    root = tmp_path / "root"
    (root / "2024-01" / "run_id=a" / "truth").mkdir(parents=True)
    (root / "2024-01" / "run_id=a" / "truth" / "paths.parquet").write_bytes(b"inside")
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "run_id=a" / "truth").mkdir(parents=True)
    (elsewhere / "run_id=a" / "truth" / "paths.parquet").write_bytes(b"outside")
    target = {
        "file": ("2024-01/run_id=a/truth/paths.parquet", "run_id=a/truth/paths.parquet"),
        "folder": ("2024-01/run_id=a/truth", "run_id=a/truth"),
        "run_dir": ("2024-01/run_id=a", "run_id=a"),
        "month": ("2024-01", ""),
    }[swapped]
    link = root / target[0]
    shutil.rmtree(link) if link.is_dir() else link.unlink()
    os.symlink(elsewhere / target[1] if target[1] else elsewhere, link)
    root_fd = os.open(root, os.O_RDONLY)
    try:
        with pytest.raises(UnsafePath, match="symbolic link"):
            open_below(root_fd, ["2024-01", "run_id=a", "truth", "paths.parquet"], "p")
    finally:
        os.close(root_fd)


def test_open_below_refuses_a_fifo_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    root_fd = os.open(tmp_path, os.O_RDONLY)
    try:
        with pytest.raises(UnsafePath, match="not a regular file"):
            open_below(root_fd, ["pipe"], "pipe")
    finally:
        os.close(root_fd)


def test_a_swap_after_the_open_does_not_change_what_is_read(conn, runs_root, tmp_path, monkeypatch):
    """The file is swapped for a symlink after it was opened: the opened file is read."""
    run_dir = build_run(runs_root, "r1", _tables("r1", "alice"))
    sync_catalog(conn, runs_root)
    artifact = run_dir / "truth" / "paths.parquet"
    outside = _outside(tmp_path)
    real_read = exports_module._read_descriptor

    def swap_then_read(fd, schema):
        if os.fstat(fd).st_ino == artifact.stat().st_ino:
            link = artifact.with_name(".swap")
            os.symlink(outside, link)
            os.replace(link, artifact)  # the name now points outside the root
        return real_read(fd, schema)

    monkeypatch.setattr(exports_module, "_read_descriptor", swap_then_read)
    status = refresh_exports(conn, tmp_path / "exports")

    assert _callers(tmp_path / "exports") == {"alice"}
    assert [p for p in status.problems if p.artifact_type == "paths"] == []


def test_exports_never_read_outside_data_while_files_are_swapped(conn, runs_root, tmp_path):
    """A thread keeps swapping the artifact and a symlink to outside data; refreshes race it."""
    run_dir = build_run(runs_root, "r1", _tables("r1", "alice"))
    sync_catalog(conn, runs_root)
    artifact = run_dir / "truth" / "paths.parquet"
    good = tmp_path / "good.parquet"
    shutil.copy(artifact, good)
    outside = _outside(tmp_path)
    stop = threading.Event()

    def swapper() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            tmp = artifact.with_name(f".swap{n}")
            if n % 2:
                os.symlink(outside, tmp)
            else:
                shutil.copy(good, tmp)
            os.replace(tmp, artifact)

    thread = threading.Thread(target=swapper, daemon=True)
    thread.start()
    seen: set[str] = set()
    try:
        for i in range(150):
            exports = tmp_path / f"exports{i}"
            status = refresh_exports(conn, exports)
            callers = _callers(exports)
            seen |= callers
            assert "OUTSIDE" not in callers
            for problem in status.problems:
                assert "symbolic link" in problem.error or "missing" in problem.error
            shutil.rmtree(exports)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert "alice" in seen or seen == set()
