"""Headless Debian Chromium for the browser tests: where it is, how it is started, and the skip when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("DISTILL_KIT_CHROMIUM", "/usr/bin/chromium")
# no network, no first-run UI, no background fetches: the page under test is the only thing the browser loads
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                    reason=f"{CHROMIUM} missing: run scripts/install_browser.sh")


def launch(pw, **kwargs):
    """``pw.chromium.launch`` with the project's binary and flags (``pw`` from ``sync_playwright()``)."""
    return pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS, **kwargs)


def launch_persistent(pw, profile: Path, **kwargs):
    """A persistent context (its own profile folder) with the project's binary and flags."""
    return pw.chromium.launch_persistent_context(str(profile), executable_path=CHROMIUM, headless=True,
                                                 args=ARGS, **kwargs)
