"""Debian's Chromium driven by Playwright, for the dashboard's browser tests and screenshots.

The browser comes from the machine's packages (``apt-get install chromium``, done here
when /usr/bin/chromium is missing, the way the suite installs redis-server); Playwright's
own browser downloads are never used: it is launched with ``executable_path``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def ensure_chromium() -> str:
    """The path of Debian's chromium, installed with apt-get when missing."""
    if os.path.exists(CHROMIUM):
        return CHROMIUM
    if shutil.which("apt-get") is None:
        raise RuntimeError(f"{CHROMIUM} is missing and apt-get is not available to install it")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    if not os.path.exists(CHROMIUM):
        raise RuntimeError("apt-get install chromium did not provide /usr/bin/chromium")
    return CHROMIUM


def launch(playwright: Any) -> Any:
    """A headless Chromium browser (Playwright's ``Browser``) on the machine's binary."""
    return playwright.chromium.launch(executable_path=ensure_chromium(), args=ARGS, headless=True)
