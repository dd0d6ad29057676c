from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from quantbot_assets.catalog.writer import catalog_writer


@pytest.fixture
def runs_root(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    root.mkdir()
    return root


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "backtest_catalog.duckdb"


@pytest.fixture
def conn(db_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    with catalog_writer(db_path) as connection:
        yield connection


@pytest.fixture(autouse=True)
def _no_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    # Durability is not under test, and fsync costs ~30 ms a call on this disk;
    # atomic renames (what readers rely on) still happen.
    monkeypatch.setattr(os, "fsync", lambda fd: None)
