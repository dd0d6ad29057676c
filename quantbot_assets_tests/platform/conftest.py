from __future__ import annotations

import dataclasses
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from quantbot_assets.definitions import build_definitions
from quantbot_assets.settings import PACKAGE_DIR, Settings
from quantbot_assets_tests.platform.tiny_data import HORIZON_MS, TinyData, write_tiny_data

warnings.filterwarnings("ignore", module="dagster")

TEST_PARAMS = {"horizon_ms": HORIZON_MS}


@pytest.fixture
def tiny(tmp_path: Path) -> TinyData:
    return write_tiny_data(tmp_path / "data")


@pytest.fixture
def settings(tmp_path: Path, tiny: TinyData) -> Settings:
    registry = tmp_path / "policies.yaml"
    shutil.copy(PACKAGE_DIR.parent / "policies.yaml", registry)
    base = Settings.from_env({"QUANTBOT_PROJECT_DIR": str(tmp_path)})
    return dataclasses.replace(
        base, calls_path=tiny.calls, candles_path=tiny.candles, policy_registry=registry
    )


@pytest.fixture
def defs(settings: Settings) -> dg.Definitions:
    return build_definitions(settings)


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as inst:
        yield inst
