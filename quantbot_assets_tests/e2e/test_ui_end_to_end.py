"""End to end through the web UI's own API and a real browser.

`quantbot dev` serves a throw-away project; the test backfills two days of the
truth layer and then one policy on those days with the GraphQL mutation the
UI's "Materialize" dialog sends, waits until the run catalog sensor has
catalogued every run and refreshed the golden exports, then drives headless
chromium to the asset graph and to a materialization, saving screenshots.
Finally it stops the server with SIGTERM and expects a clean exit.

Set QUANTBOT_E2E_SCREENSHOTS=docs/screenshots to refresh the documentation's
screenshots from a run (otherwise they go to the test's temp dir).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from quantbot_assets.catalog.queries import CatalogNotFoundError, query_runs
from quantbot_assets.defs.catalog.assets import CATALOG_RUN_TAG
from quantbot_assets.rundir import SUCCESS_MARKER
from quantbot_assets_tests.e2e import dagster_ui
from quantbot_assets_tests.e2e.browser import CHROMIUM, Chromium
from quantbot_assets_tests.e2e.dagster_api import FINISHED_BACKFILL, DagsterGraphQL, poll
from quantbot_assets_tests.e2e.dev_process import DevServer, Project
from quantbot_assets_tests.platform.tiny_data import HORIZON_MS, write_tiny_data

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"needs Debian's chromium at {CHROMIUM} (apt-get install -y chromium)",
    ),
]

DAYS = ["2024-01-01", "2024-01-02"]
POLICY = "fixed-stop-5pct"
POLICY_KEYS = [f"{day}|{POLICY}" for day in DAYS]
RUN_CONFIG = {"resources": {"params": {"config": {"horizon_ms": HORIZON_MS}}}}
MAX_PNG_BYTES = 200_000
MONTH = "2024-01"
# The grid of the frontier asset test; walk-forward folds of one day over the two days.
GRID = {
    "sl10": {"kind": "fixed_stop", "stop_loss_bps": 1000},
    "sl10-tp20": {"kind": "fixed_stop", "stop_loss_bps": 1000, "take_profit_bps": 2000},
    "time-1h": {"kind": "time_stop", "max_hold_ms": 3_600_000},
}
OP_CONFIG: dict[str, dict[str, Any]] = {
    "frontier": {"grid_json": json.dumps(GRID), "min_trades": 2},
    "walk_forward": {
        "grid_json": json.dumps(GRID),
        "min_trades": 2,
        "baseline_policy_id": "sl10",
        "train_days": 1,
        "test_days": 1,
        "step_days": 1,
        "first_day": "2024-01-01",
        "last_day": "2024-01-03",
    },
}


def screenshot_dir(tmp_path: Path) -> Path:
    chosen = os.environ.get("QUANTBOT_E2E_SCREENSHOTS")
    return Path(chosen).resolve() if chosen else tmp_path / "screenshots"


def _range(run: dict[str, Any]) -> tuple[str | None, str | None]:
    return (
        _tag(run, "dagster/asset_partition_range_start"),
        _tag(run, "dagster/asset_partition_range_end"),
    )


def run_backfill(
    api: DagsterGraphQL,
    server: DevServer,
    assets: list[str],
    partitions: list[str],
    run_config: dict[str, Any] = RUN_CONFIG,
) -> list[dict[str, Any]]:
    """Launch like the UI does, wait until the backfill daemon has finished it; its runs."""
    backfill_id = api.launch_backfill(assets, partitions, run_config)
    done = poll(
        lambda: (b := api.backfill(backfill_id)).status in FINISHED_BACKFILL and b,
        timeout_s=240,
        what=f"backfill {backfill_id} of {assets} {partitions}",
        on_timeout=server.fail,
    )
    statuses = sorted((run["status"], _range(run)) for run in done.runs)
    # One backfill of a range is one run (the assets' single-run backfill policy).
    if done.status != "COMPLETED_SUCCESS" or len(done.runs) != 1:
        raise server.fail(f"backfill {backfill_id} ended {done.status}; runs: {statuses}")
    if len(partitions) > 1:
        assert _range(done.runs[0]) == (partitions[0], partitions[-1]), statuses
    assert all(run["status"] == "SUCCESS" for run in done.runs), statuses
    return done.runs


def charts_shown(images: list[dict[str, Any]]) -> bool:
    """At least one chart decoded at its drawn size (480 x 288) and laid out on the page."""
    return any(
        i["complete"] and (i["width"], i["height"]) == (480, 288) and i["shown"] > 0 for i in images
    )


def _tag(run: dict[str, Any], key: str) -> str:
    return next((str(t["value"]) for t in run["tags"] if t["key"] == key), "")


def catalogued(catalog: Path, run_ids: set[str]) -> pd.DataFrame | None:
    """The catalog rows of `run_ids` once all of them are registered (read from its snapshot)."""
    try:
        runs = query_runs(catalog, limit=1000)
    except CatalogNotFoundError:
        return None
    mine = runs[runs["run_id"].isin(run_ids)]
    return mine if len(mine) == len(run_ids) else None


def test_backfill_catalog_and_ui_pages(tmp_path: Path) -> None:
    tiny = write_tiny_data(tmp_path / "input")
    project = Project.create(tmp_path / "project", calls=tiny.calls, candles=tiny.candles)
    shots = screenshot_dir(tmp_path)
    server = DevServer(project)
    try:
        server.wait_until_served()
        api = DagsterGraphQL(server.url)

        # The policy registry sensor runs at daemon start: the policy dimension fills in.
        poll(
            lambda: POLICY in api.policy_ids(),
            timeout_s=120,
            what="policy_registry_sensor to add the registry's policy ids",
            on_timeout=server.fail,
        )

        truth_runs = run_backfill(api, server, ["alerts", "paths", "errors"], DAYS)
        policy_runs = run_backfill(api, server, ["trades", "summary"], POLICY_KEYS)
        truth_ids = {run["id"] for run in truth_runs}
        policy_ids = {run["id"] for run in policy_runs}

        # The run catalog sensor sees the _SUCCESS markers and requests catalog runs.
        catalog = poll(
            lambda: catalogued(project.catalog, truth_ids | policy_ids),
            timeout_s=180,
            what="run_catalog_sensor to catalogue the backfills' 2 runs",
            on_timeout=server.fail,
        )
        assert set(catalog["status"]) == {"completed"}
        assert catalog.groupby("run_type")["run_id"].apply(set).to_dict() == {
            "path-only": truth_ids,
            "policy": policy_ids,
        }
        assert set(catalog.loc[catalog["run_type"] == "policy", "policy_id"]) == {POLICY}
        for run_dir in catalog["run_dir"]:
            assert (Path(run_dir) / SUCCESS_MARKER).exists(), run_dir
            assert Path(run_dir).is_relative_to(project.runs_dir), run_dir

        # Catalog runs were requested by the sensor and (exports, leaderboards included) succeeded.
        def sensor_runs_done() -> list[dict[str, Any]] | None:
            runs = api.runs_with_tag(CATALOG_RUN_TAG, "sensor")
            return (
                runs
                if runs and all(r["status"] in ("SUCCESS", "FAILURE", "CANCELED") for r in runs)
                else None
            )

        catalog_runs = poll(
            sensor_runs_done,
            timeout_s=120,
            what="the sensor's catalog runs to end",
            on_timeout=server.fail,
        )
        assert {r["status"] for r in catalog_runs} == {"SUCCESS"}, catalog_runs

        def exports_current() -> pd.DataFrame | None:
            path = project.exports_dir / "trades.parquet"
            trades = pd.read_parquet(path) if path.exists() else None
            return trades if trades is not None and set(trades["run_id"]) == policy_ids else None

        trades = poll(
            exports_current,
            timeout_s=60,
            what="golden exports of both policy runs",
            on_timeout=server.fail,
        )
        assert set(trades["policy_id"]) == {POLICY}
        summary = pd.read_parquet(project.exports_dir / "summary.parquet")
        assert sorted(summary["day"].astype(str)) == DAYS
        assert summary["trades_count"].sum() == len(trades)
        paths = pd.read_parquet(project.exports_dir / "paths.parquet")
        assert set(paths["run_id"]) == truth_ids
        assert set(trades["call_id"]) == set(paths["call_id"])  # one trade per entered call
        status = json.loads((project.exports_dir / "_export_status.json").read_text())
        assert status, "empty _export_status.json"

        # The pages a user opens: the asset graph in its groups, and a materialization.
        summary_run = catalog[
            catalog["partition_keys_json"].str.contains(POLICY_KEYS[0], regex=False)
        ]
        summary_run_dir = str(summary_run["run_dir"].iloc[0])
        with Chromium(1400, 900) as browser:
            graph_text = dagster_ui.asset_graph(browser, server.url, shots / "asset-graph.png")
        for name in (
            "inputs",
            "truth",
            "policy",
            "optimization",
            "catalog",
            "alerts",
            "paths",
            "trades",
            "summary",
            "frontier",
            "backtest_catalog",
        ):
            assert name in graph_text, f"{name} not on the asset graph"
        browser_images: dict[str, list[dict[str, Any]]] = {}
        with Chromium(1500, 1700, scale=0.7) as browser:
            page = dagster_ui.materialization(
                browser,
                server.url,
                "summary",
                POLICY_KEYS[0],
                shots / "summary-materialization.png",
                expect=("dagster/row_count", "return_distribution", "exit_reasons", "run_dir"),
            )
            # The return distribution as a picture: its dialog, saved as a screenshot too.
            dagster_ui.materialization(
                browser,
                server.url,
                "summary",
                POLICY_KEYS[0],
                shots / "summary-return-chart.png",
                expect=("return_distribution_chart",),
                chart="return_distribution_chart",
            )
            browser_images["summary"] = dagster_ui.data_images(browser)
        for text in ("trades_count", "median_return_bps", "bps |", "exit_reason", summary_run_dir):
            assert text in page, f"{text!r} not on the summary materialization page"
        assert "return_distribution_chart" in page
        assert charts_shown(browser_images["summary"]), browser_images
        with Chromium(1400, 1000, scale=0.8) as browser:
            page = dagster_ui.asset_overview(
                browser,
                server.url,
                "backtest_catalog",
                shots / "backtest-catalog.png",
                expect=("total_runs",),
            )
        assert "Total runs: 2" in page, "the catalog asset does not report the 2 runs"

        # The optimization group: a frontier and a walk-forward of the month (a run each: two
        # assets that compute missing truth days in one run would both write its truth files);
        # their materializations show their charts as images the browser decodes.
        for asset in ("frontier", "walk_forward"):
            config = {**RUN_CONFIG, "ops": {asset: {"config": OP_CONFIG[asset]}}}
            run_backfill(api, server, [asset], [MONTH], config)
        with Chromium(1500, 1700, scale=0.7) as browser:
            page = dagster_ui.materialization(
                browser,
                server.url,
                "frontier",
                MONTH,
                shots / "frontier-materialization.png",
                expect=("score_vs_stop_outs", "best_overall"),
                chart="score_vs_stop_outs",
            )
            browser_images["frontier"] = dagster_ui.data_images(browser)
            page += dagster_ui.materialization(
                browser,
                server.url,
                "walk_forward",
                MONTH,
                shots / "walk-forward-materialization.png",
                expect=("in_vs_out_of_sample", "holds_up", "does_not_hold_up"),
                chart="in_vs_out_of_sample",
            )
            browser_images["walk_forward"] = dagster_ui.data_images(browser)
        assert "in_vs_out_of_sample" in page and "does_not_hold_up" in page
        for asset in ("frontier", "walk_forward"):
            assert charts_shown(browser_images[asset]), (asset, browser_images)
        for png in shots.glob("*.png"):
            assert png.stat().st_size < MAX_PNG_BYTES, f"{png} is {png.stat().st_size} bytes"

        # Ctrl-C / SIGTERM stops the webserver, the daemon and the code server.
        assert server.stop() == 0, server.log_tail()
    finally:
        server.kill()
