"""Headless Chromium (Debian's `chromium`) driven over the DevTools protocol, network off: for
checking generated pages as a person's browser shows them.

Chromium is started with the flags that let it run on a machine without any network (no
background fetches, component updates, sync or QUIC), a new empty profile, every request sent
to a proxy that does not exist (`--proxy-server=127.0.0.1:9`, loopback included) and the
DevTools network emulation set to offline, so a page that needs anything from the network
shows a console error. The protocol runs over a WebSocket (websocket-client) to the browser's
debugging endpoint on 127.0.0.1; commands and events are plain JSON
(https://chromedevtools.github.io/devtools-protocol/).

`python3 tasks.py test` installs Chromium (apt-get, as root); elsewhere:
`sudo apt-get install chromium`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHROMIUM = "chromium"
INSTALL = "apt-get install -y --no-install-recommends chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--proxy-server=127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
    "--window-size=1400,1000",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)
START_TIMEOUT_S = 60.0
COMMAND_TIMEOUT_S = 60.0


class BrowserMissing(RuntimeError):
    pass


class BrowserError(RuntimeError):
    pass


def executable() -> str:
    found = shutil.which(CHROMIUM)
    if not found:
        raise BrowserMissing(
            f"headless Chromium is not installed ({CHROMIUM} not on PATH); "
            f"python3 tasks.py test installs it as root, or: sudo {INSTALL}"
        )
    return found


class Page:
    """One tab of the browser, over its DevTools WebSocket."""

    def __init__(self, socket: Any) -> None:
        self.socket = socket
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        ident = self.next_id
        self.socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        deadline = time.monotonic() + COMMAND_TIMEOUT_S
        while time.monotonic() < deadline:
            message = json.loads(self.socket.recv())
            if message.get("id") == ident:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)
        raise BrowserError(f"{method}: no answer in {COMMAND_TIMEOUT_S:.0f} s")

    def wait_for(self, event: str, timeout_s: float = COMMAND_TIMEOUT_S) -> dict[str, Any]:
        seen = len(self.events)
        for message in self.events[:seen]:
            if message["method"] == event:
                self.events.remove(message)
                return message
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            message = json.loads(self.socket.recv())
            if message.get("method") == event:
                return message
            if "method" in message:
                self.events.append(message)
        raise BrowserError(f"no {event} in {timeout_s:.0f} s")

    def load(self, url: str) -> None:
        """Open `url` and wait until it has loaded (the `load` event)."""
        self.events = [e for e in self.events if e["method"] != "Page.loadEventFired"]
        result = self.send("Page.navigate", url=url)
        if result.get("errorText"):
            self.events.append(
                {"method": "Navigation.failed", "params": {"text": result["errorText"]}}
            )
            return
        self.wait_for("Page.loadEventFired")
        self.run("return document.readyState")  # drains the events sent meanwhile

    def run(self, body: str, *args: Any) -> Any:
        """Run a JavaScript function body (`return ...`) with `args`; its JSON value."""
        expression = f"(function(){{{body}}}).apply(null, {json.dumps(list(args))})"
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def console_errors(self) -> list[str]:
        """Errors since the last call: failed loads, CSP refusals (Log), console.error and
        uncaught exceptions (Runtime), a navigation that failed."""
        errors = []
        for event in self.events:
            method, params = event["method"], event.get("params", {})
            if method == "Log.entryAdded" and params["entry"]["level"] == "error":
                entry = params["entry"]
                errors.append(f"{entry.get('text')} {entry.get('url') or ''}".strip())
            elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                errors.append(" ".join(str(a.get("value", a)) for a in params["args"]))
            elif method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                errors.append(
                    str(details.get("exception", {}).get("description") or details.get("text"))
                )
            elif method == "Navigation.failed":
                errors.append(params["text"])
        self.events = []
        return errors

    def screenshot(self, path: Path) -> Path:
        """The whole page (beyond the window) as PNG."""
        shot = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path


def _debugging_port(profile: Path, process: subprocess.Popen[bytes]) -> int:
    """Chromium writes its debugging port into the profile once it listens."""
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BrowserError(f"chromium exited with {process.returncode} while starting")
        try:
            return int(marker.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            time.sleep(0.05)
    raise BrowserError(f"chromium did not open its debugging port in {START_TIMEOUT_S:.0f} s")


def _page_socket_url(port: int) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy: loopback
    with opener.open(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
        targets = json.loads(response.read())
    pages = [t for t in targets if t.get("type") == "page"]
    if not pages:
        raise BrowserError(f"chromium has no page target: {targets}")
    return pages[0]["webSocketDebuggerUrl"]


@contextlib.contextmanager
def offline_chromium() -> Iterator[Page]:
    """Chromium with a new empty profile and the network off; yields its first tab."""
    import websocket  # websocket-client (requirements-dev.in)

    chromium = executable()
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as folder:
        profile = Path(folder)
        log = (profile.parent / f"{profile.name}.log").open("wb")
        process = subprocess.Popen(
            [chromium, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        socket = None
        try:
            port = _debugging_port(profile, process)
            socket = websocket.create_connection(
                _page_socket_url(port), timeout=COMMAND_TIMEOUT_S, suppress_origin=True
            )
            page = Page(socket)
            for domain in ("Page", "Runtime", "Log", "Network"):
                page.send(f"{domain}.enable")
            page.send(
                "Network.emulateNetworkConditions",
                offline=True,
                latency=0,
                downloadThroughput=0,
                uploadThroughput=0,
            )
            yield page
        finally:
            if socket is not None:
                with contextlib.suppress(Exception):
                    socket.send(json.dumps({"id": 0, "method": "Browser.close"}))
                socket.close()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            log.close()
            Path(log.name).unlink(missing_ok=True)
