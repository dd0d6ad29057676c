"""Pages of the Dagster UI the test visits, brought into a state worth a screenshot.

Each function navigates, waits for the content it is about (not for a fixed
time), and saves a PNG; it returns the page text so the test can assert on
what a user would read.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
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


# Every markdown image with a PNG data URI on the page: its decoded size in the browser.
DATA_IMAGES = """[...document.querySelectorAll("img[src^='data:image/png']")].map(
    i => ({complete: i.complete, width: i.naturalWidth, height: i.naturalHeight,
           alt: i.alt, shown: i.getBoundingClientRect().width}))"""


def data_images(browser: Chromium) -> list[dict[str, Any]]:
    images: list[dict[str, Any]] = browser.evaluate(DATA_IMAGES)
    return images


def show_markdown(browser: Chromium, key: str) -> bool:
    """Open the "[Show Markdown]" dialog of the metadata row `key` (where charts are drawn)."""
    clicked: bool = browser.evaluate(
        f"""(() => {{
          const cell = [...document.querySelectorAll('td')].find(
              td => td.textContent.trim() === {json.dumps(key)});
          const link = cell && [...cell.closest('tr').querySelectorAll('a, button')].find(
              e => e.textContent.trim() === '[Show Markdown]');
          if (link) link.click();
          return Boolean(link);
        }})()"""
    )
    return clicked


def materialization(
    browser: Chromium,
    base_url: str,
    asset: str,
    partition: str,
    png: Path,
    expect: tuple[str, ...],
    chart: str | None = None,
) -> str:
    """An asset's Partitions tab with `partition` selected: its latest materialization and
    metadata; with `chart`, that metadata entry's dialog open once the browser has decoded
    its image (the UI draws markdown metadata in a dialog, "[Show Markdown]")."""
    browser.goto(f"{base_url}/assets/{asset}?view=partitions&partition={quote(partition, safe='')}")
    browser.wait_for_text("Latest materialization", "Metadata", *expect, timeout_s=60)
    dismiss_community_dialog(browser)
    browser.click_icon("panel_show_right", 0)  # hide the main navigation: room for the metadata
    _settle()
    text = browser.text()
    if chart is not None:
        if not show_markdown(browser, chart):
            raise AssertionError(f"no [Show Markdown] for {chart!r} on the {asset} page")
        browser.wait_for(
            f"(() => {{ const i = {DATA_IMAGES}; "
            "return i.length > 0 && i.every(x => x.complete && x.width > 0); })()",
            f"the {chart} image of {asset} {partition}",
        )
        _settle(0.5)
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
