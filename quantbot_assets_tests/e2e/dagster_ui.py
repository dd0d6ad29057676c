"""Pages of the Dagster UI the test visits, brought into a state worth a screenshot.

Each function navigates, waits for the content it is about (not for a fixed
time), and saves a PNG; it returns the page text so the test can assert on
what a user would read.
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import quote

from quantbot_assets_tests.e2e.browser import Chromium

GROUPS = ("inputs", "truth", "policy", "optimization", "catalog")
ALT = 1  # DevTools modifier bit for the Alt key


def dismiss_community_dialog(browser: Chromium) -> None:
    """A fresh instance greets the first visitor with a newsletter dialog: skip it."""
    if browser.click_text("Skip"):
        time.sleep(0.5)


def _settle(seconds: float = 1.0) -> None:
    # The graph animates its zoom and the UI re-renders after GraphQL polls:
    # a short pause after the content is there keeps screenshots from catching a frame mid-way.
    time.sleep(seconds)


def asset_graph(browser: Chromium, base_url: str, png: Path) -> str:
    """The global asset lineage with every group expanded, laid out top to bottom, fitted."""
    browser.goto(f"{base_url}/server_info")
    browser.wait_for("document.readyState === 'complete'", "the webserver origin")
    # Top-to-bottom layout keeps the five groups side by side on a landscape screen.
    browser.evaluate("localStorage.setItem('asset-graph-direction', JSON.stringify('vertical'))")
    browser.goto(f"{base_url}/asset-groups")
    browser.wait_for_text("Global asset lineage", *GROUPS, timeout_s=60)
    _settle()
    dismiss_community_dialog(browser)
    for kind in ("keyDown", "keyUp"):  # Alt+E: "Expand all groups"
        browser.send(
            "Input.dispatchKeyEvent",
            {
                "type": kind,
                "modifiers": ALT,
                "key": "e",
                "code": "KeyE",
                "windowsVirtualKeyCode": 69,
            },
        )
    browser.wait_for_text("backtest_catalog", "alerts", "summary", "frontier", timeout_s=30)
    browser.click_icon("panel_show_right", 0)  # hide the main navigation...
    browser.click_icon("panel_show_right", 0)  # ...and the asset sidebar
    _settle()
    browser.click(browser.width - 150, 300, count=2)  # double click on the canvas: zoom to fit
    _settle(2.0)
    text = browser.text()
    browser.screenshot(png)
    return text


def materialization(
    browser: Chromium, base_url: str, asset: str, partition: str, png: Path, expect: tuple[str, ...]
) -> str:
    """An asset's Partitions tab with `partition` selected: its latest materialization and metadata."""
    browser.goto(f"{base_url}/assets/{asset}?view=partitions&partition={quote(partition, safe='')}")
    browser.wait_for_text("Latest materialization", "Metadata", *expect, timeout_s=60)
    dismiss_community_dialog(browser)
    browser.click_icon("panel_show_right", 0)  # hide the main navigation: room for the metadata
    _settle()
    text = browser.text()
    browser.screenshot(png)
    return text


def asset_overview(
    browser: Chromium, base_url: str, asset: str, png: Path, expect: tuple[str, ...]
) -> str:
    """An unpartitioned asset's Events tab: its latest materialization and metadata."""
    browser.goto(f"{base_url}/assets/{asset}?view=events")
    browser.wait_for_text("Metadata", *expect, timeout_s=60)
    dismiss_community_dialog(browser)
    browser.click_icon("panel_show_right", 0)  # hide the main navigation: room for the metadata
    _settle()
    text = browser.text()
    browser.screenshot(png)
    return text
