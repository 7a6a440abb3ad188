"""Headless Chromium for the UI's tests and tools: Debian's chromium and chromium-driver,
driven by selenium, with no network of its own and a fresh profile each time."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

# Without the background-networking flags Chromium keeps trying to reach Google's hosts,
# which a closed network refuses, many at a time.
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
]


def missing() -> str | None:
    """Why Chromium cannot be driven here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: pip install -e '.[uitest]'"
    if shutil.which("chromium") is None or shutil.which("chromedriver") is None:
        return "Chromium is not installed: apt-get install chromium chromium-driver (.ci/run does)"
    return None


def driver(profile: Path, width: int = 1400, height: int = 1000) -> Any:
    """A new headless Chromium with its profile in ``profile``; quit() it when done."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for f in [*FLAGS, f"--window-size={width},{height}", f"--user-data-dir={profile}"]:
        opts.add_argument(f)
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    return webdriver.Chrome(
        service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=opts
    )
