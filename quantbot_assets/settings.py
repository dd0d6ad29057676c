"""Where things live, read once from the environment.

Every path has a default under the project directory and an environment
variable that moves it. Nothing reads the environment at import time: call
`Settings.from_env()` where a decision is needed (definitions, CLI).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from quantbot_assets.errors import DataError
from quantbot_assets.storage import is_url, mirror_dir, open_location

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_FIRST_DAY = "2024-01-01"


class SettingsError(DataError, ValueError):
    """An environment variable with a value that cannot be used (one line)."""


def _default_project_dir() -> Path:
    """The checkout when installed editable (it holds dagster.yaml), else the cwd."""
    checkout = PACKAGE_DIR.parent
    if (checkout / "dagster.yaml").exists() and (checkout / "pyproject.toml").exists():
        return checkout
    return Path.cwd()


@dataclass(frozen=True)
class Settings:
    project_dir: Path
    runs_dir: Path
    data_dir: Path
    calls_path: Path
    calls_table: str
    candles_path: Path
    candles_table: str
    catalog_path: Path
    exports_dir: Path
    policy_registry: Path
    dagster_home: Path
    # The first day partition (YYYY-MM-DD); months start at its month.
    first_day: str = DEFAULT_FIRST_DAY
    # QUANTBOT_CALLS / QUANTBOT_CANDLES given as URLs (s3://bucket/prefix): the
    # path fields above are then their local read-only mirrors under
    # QUANTBOT_CACHE_DIR, refreshed before use (storage.sync_mirror).
    calls_url: str | None = None
    candles_url: str | None = None

    @property
    def sample_calls_path(self) -> Path:
        return self.data_dir / "alerts.duckdb"

    @property
    def sample_candles_path(self) -> Path:
        return self.data_dir / "candles"

    @property
    def uses_sample_data(self) -> bool:
        return (
            self.calls_path == self.sample_calls_path
            and self.candles_path == self.sample_candles_path
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def path(name: str, default: Path) -> Path:
            value = env.get(name)
            return Path(value).expanduser().resolve() if value else default

        first_day = env.get("QUANTBOT_FIRST_DAY", "").strip() or DEFAULT_FIRST_DAY
        try:
            parsed = date.fromisoformat(first_day)
        except ValueError:
            raise SettingsError(
                f"QUANTBOT_FIRST_DAY {first_day!r} is not a date (YYYY-MM-DD)"
            ) from None
        if not date(1970, 1, 1) <= parsed <= datetime.now(UTC).date():
            raise SettingsError(
                f"QUANTBOT_FIRST_DAY {first_day!r} must lie between 1970-01-01 and today"
            )
        project = path("QUANTBOT_PROJECT_DIR", _default_project_dir())
        data = path("QUANTBOT_DATA_DIR", project / "data")
        cache = path("QUANTBOT_CACHE_DIR", data / "cache")

        def source(name: str, default: Path) -> tuple[Path, str | None]:
            value = env.get(name, "").strip()
            if not is_url(value):
                return path(name, default), None
            open_location(value, env)  # a malformed URL is named here, before any run
            return mirror_dir(value, cache), value

        calls_path, calls_url = source("QUANTBOT_CALLS", data / "alerts.duckdb")
        candles_path, candles_url = source("QUANTBOT_CANDLES", data / "candles")
        return cls(
            project_dir=project,
            runs_dir=path("QUANTBOT_RUNS_DIR", project / "runs"),
            data_dir=data,
            calls_path=calls_path,
            calls_table=env.get("QUANTBOT_CALLS_TABLE", "alerts"),
            candles_path=candles_path,
            candles_table=env.get("QUANTBOT_CANDLES_TABLE", "candles"),
            catalog_path=path("QUANTBOT_CATALOG", data / "backtest_catalog.duckdb"),
            exports_dir=path("QUANTBOT_EXPORTS_DIR", data / "exports"),
            policy_registry=path("QUANTBOT_POLICY_REGISTRY", project / "policies.yaml"),
            dagster_home=path("DAGSTER_HOME", project),
            first_day=parsed.isoformat(),
            calls_url=calls_url,
            candles_url=candles_url,
        )


def ensure_dagster_home(settings: Settings) -> None:
    """Point DAGSTER_HOME at the project's instance directory unless the user set it."""
    os.environ.setdefault("DAGSTER_HOME", str(settings.dagster_home))
