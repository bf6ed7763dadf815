"""Headless Chromium driven over the Chrome DevTools Protocol, for tests of web pages.

A small CDP client on aiohttp's websocket client, so no browser-automation dependency:
it launches Debian's ``/usr/bin/chromium`` headless with a temporary profile, opens
pages, collects console errors, evaluates JavaScript and takes PNG screenshots.

Usage::

    from tests.browser_harness import Browser

    async with Browser() as browser:                   # launches chromium, removes it all on exit
        page = await browser.new_page(width=1400, height=1000)
        await page.goto("http://127.0.0.1:6066/dashboard")   # returns after the load event
        await page.wait_for("window.segstreamDashboard?.renders >= 2", timeout=30)
        title = await page.evaluate("document.title")        # JSON-able values come back as Python
        png = await page.screenshot(tmp_path / "page.png")   # full page by default; also returns the bytes
        assert page.errors == [], page.errors                # console errors, exceptions, failed loads

``page.errors`` collects, as readable strings:

- ``console.error(...)`` calls (``Runtime.consoleAPICalled`` of type ``error``);
- uncaught exceptions and unhandled rejections (``Runtime.exceptionThrown``);
- browser log entries of level ``error`` (``Log.entryAdded``), which include failed
  resource loads such as a 404 for a script or stylesheet.

Everything the browser writes goes to a temporary directory, removed by ``close()``
along with the browser's whole process group. Chromium's own output is kept in
``browser.log_text()`` for failure messages.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = "/usr/bin/chromium"


class BrowserError(RuntimeError):
    """Chromium did not start, a CDP command failed, or page JavaScript threw."""


class Browser:
    """One headless Chromium process and its DevTools websocket; use it as ``async with``."""

    def __init__(self, binary: str = CHROMIUM, command_timeout: float = 30.0, start_timeout: float = 30.0) -> None:
        self.binary = binary
        self.command_timeout = command_timeout
        self.start_timeout = start_timeout
        self._tmp: Path | None = None
        self._process: subprocess.Popen | None = None
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self._listeners: dict[str | None, list[Callable[[str, dict], None]]] = {}  # by CDP session id

    async def __aenter__(self) -> Browser:
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> Browser:
        """Launch Chromium and connect to its browser-level DevTools endpoint."""
        if not os.access(self.binary, os.X_OK):
            raise BrowserError(f"{self.binary} not found: install Debian's chromium package")
        self._tmp = Path(tempfile.mkdtemp(prefix="segstream-chromium-"))
        profile = self._tmp / "profile"
        args = [
            self.binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--remote-debugging-port=0",
            f"--user-data-dir={profile}", "--no-first-run", "--no-default-browser-check",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--mute-audio", "--hide-scrollbars", "about:blank",
        ]  # fmt: skip
        with (self._tmp / "chromium.log").open("wb") as log:
            # A session of its own, so close() can end the renderer and GPU helpers with the browser.
            self._process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        port, path = await self._devtools_address(profile / "DevToolsActivePort")
        self._http = aiohttp.ClientSession()
        # Screenshots arrive as one large base64 message: lift aiohttp's 4 MB frame limit.
        self._ws = await self._http.ws_connect(f"ws://127.0.0.1:{port}{path}", max_msg_size=0)
        self._reader = asyncio.create_task(self._read())
        return self

    async def _devtools_address(self, active_port: Path) -> tuple[int, str]:
        """(port, websocket path) from the file Chromium writes once its DevTools server listens."""
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BrowserError(f"chromium exited with {self._process.returncode}:\n{self.log_text()}")
            lines = active_port.read_text().splitlines() if active_port.exists() else []
            if len(lines) >= 2:  # the file is written in one go, but may be seen half-written
                return int(lines[0]), lines[1]
            await asyncio.sleep(0.05)
        raise BrowserError(f"chromium wrote no DevToolsActivePort within {self.start_timeout}s:\n{self.log_text()}")

    def log_text(self, tail: int = 4000) -> str:
        """The end of Chromium's own stdout and stderr."""
        log = self._tmp / "chromium.log" if self._tmp else None
        return log.read_text(errors="replace")[-tail:] if log and log.exists() else ""

    async def new_page(self, width: int = 1400, height: int = 1000) -> Page:
        """A new tab with a fixed viewport, its console and log already watched."""
        target = await self.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})
        page = Page(self, attached["sessionId"])
        await page._enable(width, height)
        return page

    async def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        """Send one CDP command and return its result; raises BrowserError on a protocol error."""
        if self._ws is None or self._ws.closed:
            raise BrowserError(f"{method}: the DevTools connection is closed")
        message: dict[str, Any] = {"id": next(self._ids), "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        reply = asyncio.get_running_loop().create_future()
        self._pending[message["id"]] = reply
        try:
            await self._ws.send_json(message)
            result = await asyncio.wait_for(reply, self.command_timeout)
        finally:
            self._pending.pop(message["id"], None)
        if "error" in result:
            raise BrowserError(f"{method}: {result['error'].get('message')} {result['error'].get('data', '')}".strip())
        return result.get("result", {})

    def listen(self, session: str | None, callback: Callable[[str, dict], None]) -> None:
        """Call ``callback(method, params)`` for every event of a CDP session (None: the browser's)."""
        self._listeners.setdefault(session, []).append(callback)

    async def _read(self) -> None:
        """Route replies to the commands that wait for them and events to their session's listeners."""
        try:
            async for frame in self._ws:
                if frame.type != aiohttp.WSMsgType.TEXT:
                    continue
                message = frame.json()
                if "id" in message:
                    future = self._pending.get(message["id"])
                    if future is not None and not future.done():
                        future.set_result(message)
                    continue
                for callback in self._listeners.get(message.get("sessionId"), []):
                    callback(message["method"], message.get("params", {}))
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(BrowserError(f"the DevTools connection closed:\n{self.log_text()}"))

    async def close(self) -> None:
        """Close the connection, end the browser's process group and remove the temporary profile."""
        if self._ws is not None and not self._ws.closed:
            try:
                await asyncio.wait_for(self.send("Browser.close"), 5)
            except (BrowserError, OSError, asyncio.TimeoutError):
                pass  # the process group is ended below either way
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
        if self._process is not None:
            await asyncio.to_thread(_end_process_group, self._process)
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
        self._ws = self._reader = self._http = self._process = self._tmp = None


def _end_process_group(process: subprocess.Popen) -> None:
    """End the browser's own process group (Popen's ``start_new_session``), and nothing else."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(5)
    except ProcessLookupError:
        pass  # already gone, with every helper
    except subprocess.TimeoutExpired:
        pass  # SIGKILL below
    try:
        os.killpg(process.pid, signal.SIGKILL)  # a browser that ignored SIGTERM, or helpers that outlived it
    except ProcessLookupError:
        pass
    process.wait(5)


class Page:
    """One tab: navigate, evaluate, wait for a condition, take a screenshot; ``errors`` lists console errors."""

    def __init__(self, browser: Browser, session: str) -> None:
        self.browser = browser
        self.session = session
        self.errors: list[str] = []
        self._waiters: dict[str, list[asyncio.Future]] = {}
        browser.listen(session, self._on_event)

    async def _enable(self, width: int, height: int) -> None:
        for domain in ("Page", "Runtime", "Log"):
            await self.send(f"{domain}.enable")
        metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
        await self.send("Emulation.setDeviceMetricsOverride", metrics)

    async def send(self, method: str, params: dict | None = None) -> dict:
        """A CDP command to this tab."""
        return await self.browser.send(method, params, session=self.session)

    def _on_event(self, method: str, params: dict) -> None:
        error = _error_of(method, params)
        if error is not None:
            self.errors.append(error)
        for future in self._waiters.pop(method, []):
            if not future.done():
                future.set_result(params)

    def _next(self, method: str) -> asyncio.Future:
        """A future for the next event ``method`` of this tab; create it before causing the event."""
        future = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(method, []).append(future)
        return future

    async def goto(self, url: str, timeout: float = 30.0) -> None:
        """Navigate and return once the page's load event has fired."""
        loaded = self._next("Page.loadEventFired")
        result = await self.send("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise BrowserError(f"navigating to {url}: {result['errorText']}")
        await asyncio.wait_for(loaded, timeout)

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (promises awaited), as JSON-decoded Python."""
        result = await self.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression!r} threw: {_exception_text(result['exceptionDetails'])}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 30.0, interval: float = 0.1) -> Any:
        """Poll until ``expression`` is truthy and return its value; TimeoutError says the last value and errors.

        An expression that throws counts as not yet true (``window.x.y`` before ``x`` exists).
        """
        deadline = time.monotonic() + timeout
        last: Any = None
        while True:
            try:
                last = await self.evaluate(expression)
                if last:
                    return last
            except BrowserError as exc:
                last = exc
            if time.monotonic() > deadline:
                raise TimeoutError(f"{expression!r} not true within {timeout}s (last: {last!r}; errors: {self.errors})")
            await asyncio.sleep(interval)

    async def screenshot(self, path: Path | str | None = None, full_page: bool = True) -> bytes:
        """A PNG of the viewport, or of the whole page when ``full_page``; written to ``path`` if given."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = (await self.send("Page.getLayoutMetrics"))["cssContentSize"]
            params["captureBeyondViewport"] = True
            params["clip"] = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        png = base64.b64decode((await self.send("Page.captureScreenshot", params))["data"])
        if path is not None:
            Path(path).write_bytes(png)
        return png


def _error_of(method: str, params: dict) -> str | None:
    """A readable line for an event that is a console error, an uncaught exception or an error log entry."""
    if method == "Runtime.consoleAPICalled" and params.get("type") == "error":
        return "console.error: " + " ".join(_remote_text(arg) for arg in params.get("args", []))
    if method == "Runtime.exceptionThrown":
        return "exception: " + _exception_text(params["exceptionDetails"])
    if method == "Log.entryAdded" and params["entry"].get("level") == "error":
        entry = params["entry"]
        return f"log ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}".rstrip()
    return None


def _remote_text(obj: dict) -> str:
    """A console argument (a CDP RemoteObject) as text."""
    if "value" in obj:
        return str(obj["value"])
    return obj.get("description") or obj.get("type", "?")


def _exception_text(details: dict) -> str:
    exception = details.get("exception") or {}
    where = f" at {details.get('url', '')}:{details.get('lineNumber', 0) + 1}" if details.get("url") else ""
    return (exception.get("description") or details.get("text", "?")) + where
