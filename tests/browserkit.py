"""Debian's Chromium under Playwright, never a browser Playwright would download."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("CITYFED_CHROMIUM", "/usr/bin/chromium"))
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium_or_skip() -> Path:
    if not CHROMIUM.exists() and not shutil.which(str(CHROMIUM)):
        pytest.skip(f"no Chromium at {CHROMIUM}: `apt-get install chromium` (or set "
                    "CITYFED_CHROMIUM) to run the console's browser tests")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (make setup)")
    return CHROMIUM


def launch(playwright):
    return playwright.chromium.launch(executable_path=str(chromium_or_skip()), args=LAUNCH_ARGS,
                                      headless=True)
