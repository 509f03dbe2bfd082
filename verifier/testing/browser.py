"""Headless Chromium for the HTML report: the tests drive it, and it renders the docs screenshot.

Uses the system packages (``apt-get install -y chromium chromium-driver``), never a downloaded
browser: Selenium Manager is told to stay offline and is given both paths, so starting a browser
makes no network request of its own. The browser itself runs with background networking, component
updates and sync off, and records its console and network events (``goog:loggingPrefs``) so a test
can prove that a report made no request and logged no error.

    python -m verifier.testing.browser report.html docs/html-report.png [--size 1280x1600] [--full-page]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
         "--hide-scrollbars")
INSTALL_HINT = "install them with: apt-get install -y chromium chromium-driver (.ci/run does this)"


def missing() -> list[str]:
    """The system browser pieces that are not installed (empty when both are)."""
    return [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]


@contextmanager
def headless_chromium(width: int = 1280, height: int = 1600) -> Iterator[Any]:
    """A Selenium driver for the system Chromium, in a throw-away profile, closed on exit."""
    absent = missing()
    if absent:
        raise RuntimeError(f"{' and '.join(absent)} not found; {INSTALL_HINT}")
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager: never look for downloads
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="xv-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def requests_made(driver: Any) -> list[str]:
    """URLs the browser asked for since the last call (drains the performance log)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") in ("Network.requestWillBeSent", "Network.webSocketCreated"):
            params = message.get("params", {})
            urls.append(params.get("request", {}).get("url") or params.get("url", ""))
    return urls


def console_errors(driver: Any) -> list[dict]:
    """Console entries of level SEVERE since the last call (drains the browser log)."""
    return [entry for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]


def set_viewport(driver: Any, width: int, height: int) -> None:
    """Exactly ``width`` x ``height`` CSS pixels of page (a window size would include the browser's frame)."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})


def screenshot(report: Path, out: Path, width: int = 1280, height: int = 1600, full_page: bool = False) -> None:
    """Save a PNG of ``report`` (an HTML file) as the browser shows it at ``width`` x ``height``
    (or the whole page's height with ``full_page``)."""
    with headless_chromium(width, height) as driver:
        set_viewport(driver, width, height)
        driver.get(report.resolve().as_uri())
        if full_page:
            set_viewport(driver, width, driver.execute_script("return document.documentElement.scrollHeight"))
        driver.save_screenshot(str(out))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Screenshot an HTML report with headless system Chromium.")
    parser.add_argument("report", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--size", default="1280x1600", help="viewport WIDTHxHEIGHT (default 1280x1600)")
    parser.add_argument("--full-page", action="store_true", help="capture the whole page's height")
    args = parser.parse_args(argv)
    width, _, height = args.size.partition("x")
    screenshot(args.report, args.png, int(width), int(height), args.full_page)


if __name__ == "__main__":
    main()
