"""deploy/dagster.yaml: valid for Dagster, PostgreSQL and Celery from the environment, same queue limits."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from dagster._core.instance.config import dagster_instance_config

ROOT = Path(__file__).resolve().parents[2]
ENV = {
    "DAGSTER_PG_HOST": "127.0.0.1",
    "DAGSTER_PG_PORT": "5432",
    "DAGSTER_PG_USER": "dagster",
    "DAGSTER_PG_PASSWORD": "secret",
    "DAGSTER_PG_DB": "dagster",
    "QUANTBOT_CELERY_BROKER": "redis://127.0.0.1:6379/0",
    "QUANTBOT_CELERY_BACKEND": "redis://127.0.0.1:6379/1",
}


def test_deploy_profile_is_valid_and_keeps_the_laptop_limits(tmp_path, monkeypatch):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    shutil.copy(ROOT / "deploy" / "dagster.yaml", tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))
    assert set(config["storage"]) == {"postgres"}
    db = config["storage"]["postgres"]["postgres_db"]
    assert db.pop("scheme") == "postgresql+psycopg2"  # the driver dagster-postgres installs
    assert all(isinstance(value, dict) and set(value) == {"env"} for value in db.values())
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["run_launcher"]["class"] == "CeleryRunLauncher"
    for section in ("broker", "backend"):  # addresses come from the environment only
        assert set(config["run_launcher"]["config"][section]) == {"env"}
    laptop = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    assert config["concurrency"] == laptop["concurrency"]
    assert config["run_retries"]["retry_on_asset_or_op_failure"] is False
