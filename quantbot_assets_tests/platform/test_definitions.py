"""The code location loads; every job resolves; every asset is described and grouped."""

from __future__ import annotations

import dagster as dg

EXPECTED_GROUPS = {
    "alerts": "inputs",
    "paths": "truth",
    "errors": "truth",
    "trades": "policy",
    "summary": "policy",
    "frontier": "optimization",
    "walk_forward": "optimization",
    "backtest_catalog": "catalog",
    "golden_exports": "catalog",
    "caller_leaderboard": "catalog",
    "policy_leaderboard": "catalog",
}


def test_module_definitions_resolve_every_job(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("QUANTBOT_PROJECT_DIR", str(tmp_path))
    import importlib

    import quantbot_assets.definitions as module

    defs = importlib.reload(module).defs
    for name in (
        "path_only_backtest",
        "policy_backtest",
        "frontier_search",
        "walk_forward_search",
        "catalog_sync",
        "register_policy",
    ):
        assert defs.resolve_job_def(name).name == name
    for sensor in ("policy_registry_sensor", "run_catalog_sensor", "stale_run_sensor"):
        assert defs.resolve_sensor_def(sensor).default_status == dg.DefaultSensorStatus.RUNNING
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        name = key.to_user_string()
        assert node.group_name == EXPECTED_GROUPS[name], name
        assert node.description and "\n" not in node.description.strip(), name
    checks = {key.name for key in graph.asset_check_keys}
    assert {
        "paths_calls_conserved",
        "trades_return_within_peak",
        "frontier_schema_as_declared",
        "walk_forward_schema_as_declared",
    } <= checks


def test_settings_come_from_the_environment_once(tmp_path) -> None:
    from quantbot_assets.settings import Settings

    settings = Settings.from_env(
        {"QUANTBOT_PROJECT_DIR": str(tmp_path), "QUANTBOT_RUNS_DIR": "/srv/runs"}
    )
    assert settings.runs_dir.as_posix() == "/srv/runs"
    assert settings.calls_path == tmp_path / "data" / "alerts.duckdb"
    assert settings.catalog_path == tmp_path / "data" / "backtest_catalog.duckdb"
    assert settings.uses_sample_data
