"""Headless Debian chromium driven over the DevTools protocol (one page, a few commands).

Only what the end-to-end test needs: open a URL, wait until a JavaScript
condition holds, click an element by its text, read the page text, save a
PNG. The flags keep chromium from phoning home: on a machine without internet
its background connections are refused and would only add noise and delay.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import Any

from websockets.sync.client import ClientConnection, connect

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--disable-crash-reporter",
    "--disable-breakpad",
    "--hide-scrollbars",
)


class BrowserError(RuntimeError):
    """Chromium did not start, or a page did not reach the expected state in time."""


class Chromium:
    """One headless chromium with one page; use as a context manager."""

    def __init__(
        self, width: int = 1400, height: int = 900, scale: float = 1.0, executable: Path = CHROMIUM
    ) -> None:
        # A scale below 1 lays the page out on a larger CSS viewport and shrinks the
        # screenshot: a whole asset graph fits while the PNG stays small.
        self.width, self.height = width, height
        self.profile = Path(tempfile.mkdtemp(prefix="quantbot-chromium-"))
        self.process = subprocess.Popen(
            [
                str(executable),
                *CHROMIUM_FLAGS,
                f"--user-data-dir={self.profile}",
                "--remote-debugging-port=0",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._next_id = 0
        self._connection = ExitStack()
        try:
            self.ws = self._connection.enter_context(self._connect_page())
        except BaseException:
            self._stop_process()
            raise
        self.send("Page.enable")
        self.send("Runtime.enable")
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": scale, "mobile": False},
        )

    def _connect_page(self, timeout_s: float = 30.0) -> ClientConnection:
        # Port 0 lets chromium pick a free port; it writes it to DevToolsActivePort.
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout_s
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.process.poll() is not None:
                raise BrowserError(f"chromium exited with {self.process.returncode} at start")
            if time.monotonic() > deadline:
                raise BrowserError("chromium did not open its DevTools port in time")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/json/list", timeout=timeout_s
        ) as reply:
            targets = json.load(reply)
        pages = [t for t in targets if t.get("type") == "page"]
        if not pages:
            raise BrowserError("chromium has no page target")
        return connect(pages[0]["webSocketDebuggerUrl"], max_size=None)

    def send(
        self, method: str, params: dict[str, Any] | None = None, timeout_s: float = 60.0
    ) -> dict[str, Any]:
        """One DevTools command; events arriving meanwhile are dropped (we poll state instead)."""
        self._next_id += 1
        message_id = self._next_id
        self.ws.send(json.dumps({"id": message_id, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrowserError(f"no reply to {method} within {timeout_s:.0f} s")
            reply = json.loads(self.ws.recv(timeout=remaining))
            if reply.get("id") != message_id:
                continue
            if "error" in reply:
                raise BrowserError(f"{method}: {reply['error']}")
            result: dict[str, Any] = reply.get("result", {})
            return result

    def evaluate(self, expression: str) -> Any:
        result = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression[:80]!r} raised: {result['exceptionDetails']}")
        return result["result"].get("value")

    def goto(self, url: str) -> None:
        self.send("Page.navigate", {"url": url})

    def wait_for(self, condition: str, what: str, timeout_s: float = 30.0) -> None:
        """Poll the JavaScript `condition` until it is truthy; fail naming `what`."""
        deadline = time.monotonic() + timeout_s
        while not self.evaluate(f"Boolean({condition})"):
            if time.monotonic() > deadline:
                raise BrowserError(
                    f"timed out after {timeout_s:.0f} s waiting for {what}; page text starts: "
                    f"{self.text()[:600]!r}"
                )
            time.sleep(0.25)

    def wait_for_text(self, *texts: str, timeout_s: float = 30.0) -> None:
        condition = " && ".join(f"document.body.innerText.includes({json.dumps(t)})" for t in texts)
        self.wait_for(f"document.body && {condition}", f"text {list(texts)}", timeout_s)

    def text(self) -> str:
        value = self.evaluate("document.body ? document.body.innerText : ''")
        return str(value)

    def click_text(self, text: str, selector: str = "button, a, [role=button], [role=tab]") -> bool:
        """Click the first visible element matching `selector` whose text is exactly `text`."""
        finder = (
            f"[...document.querySelectorAll({json.dumps(selector)})]"
            f".find(e => e.innerText.trim() === {json.dumps(text)} && e.offsetParent !== null)"
        )
        return self._click(finder)

    def click_icon(self, icon: str, nth: int = 0) -> bool:
        """Click the `nth` visible button showing the Dagster icon named `icon` (its aria-label)."""
        finder = (
            f"[...document.querySelectorAll('button [aria-label={json.dumps(icon)}]')]"
            ".map(e => e.closest('button')).filter(e => e && e.offsetParent !== null)"
            f"[{nth}]"
        )
        return self._click(finder)

    def _click(self, finder: str) -> bool:
        # A real mouse click at the element's centre: some menus open on pointer events only.
        box = self.evaluate(
            f"(() => {{ const el = {finder}; if (!el) return null; el.scrollIntoView({{block: 'nearest'}});"
            " const r = el.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        if not box:
            return False
        self.click(int(box[0]), int(box[1]))
        return True

    def click(self, x: int, y: int, count: int = 1) -> None:
        """A real (double, if count=2) left click at viewport point (x, y)."""
        self.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y})
        for n in range(1, count + 1):
            for kind in ("mousePressed", "mouseReleased"):
                self.send(
                    "Input.dispatchMouseEvent",
                    {"type": kind, "x": x, "y": y, "button": "left", "clickCount": n},
                )

    def screenshot(self, path: Path) -> int:
        """Save the viewport as PNG; returns its size in bytes."""
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        png = base64.b64decode(data)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png)
        return len(png)

    def close(self) -> None:
        try:
            self._connection.close()
        finally:
            self._stop_process()

    def _stop_process(self) -> None:
        # Chromium runs in its own session: its group holds the renderers and helpers too.
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(timeout=10)
                break
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(ProcessLookupError):  # helpers that outlived the browser
            os.killpg(self.process.pid, signal.SIGKILL)
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
