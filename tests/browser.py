"""Headless Chromium (Debian's `chromium` + `chromium-driver`) through Selenium, with the
network off: for checking generated pages as a person's browser shows them.

The flags are those that let Chromium start on a machine with no network at all (no
background fetches, updates, sync or QUIC); every request is sent to a proxy that does not
exist (`--proxy-server=127.0.0.1:9`, loopback included) and the DevTools network emulation is
offline, so a page that needs anything from the network shows a console error.
`python3 tasks.py test` installs both packages (apt-get, as root); elsewhere:
`sudo apt-get install chromium chromium-driver`.
"""

from __future__ import annotations

import base64
import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHROMIUM = "chromium"
CHROMEDRIVER = "chromedriver"
INSTALL = "apt-get install -y --no-install-recommends chromium chromium-driver"
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
)


class BrowserMissing(RuntimeError):
    pass


def executables() -> tuple[str, str]:
    chromium, driver = shutil.which(CHROMIUM), shutil.which(CHROMEDRIVER)
    if not chromium or not driver:
        raise BrowserMissing(
            f"headless Chromium is not installed ({CHROMIUM}: {chromium}, {CHROMEDRIVER}: "
            f"{driver}); python3 tasks.py test installs it as root, or: sudo {INSTALL}"
        )
    return chromium, driver


@contextlib.contextmanager
def offline_chromium() -> Iterator[Any]:
    """A Selenium Chrome driver on Debian's Chromium, new empty profile, network off."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = executables()
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
        try:
            driver.set_network_conditions(
                offline=True, latency=0, download_throughput=0, upload_throughput=0
            )
            yield driver
        finally:
            driver.quit()


def console_errors(driver: Any) -> list[str]:
    """The SEVERE console messages since the last call (failed loads, script errors, CSP)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def full_page_png(driver: Any, path: Path) -> Path:
    """A screenshot of the whole page (beyond the window) as PNG."""
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
    )
    path.write_bytes(base64.b64decode(shot["data"]))
    return path
