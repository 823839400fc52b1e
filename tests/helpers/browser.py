"""Headless Debian Chromium for the browser tests: where it is, how it is started, the skip when it is absent, and
the report tests' offline page (every http(s) request blocked and recorded)."""

from __future__ import annotations

import os
from contextlib import contextmanager
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


@contextmanager
def offline_page(tmp_path: Path):
    """A headless Chromium page with every http(s) request aborted (and recorded); yields
    (page, errors, dialogs, requests)."""
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    dialogs: list[str] = []
    requests: list[str] = []
    with sync_playwright() as pw:
        ctx = launch_persistent(pw, tmp_path / "profile", viewport={"width": 1280, "height": 900})
        try:
            page = ctx.new_page()
            page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
            page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

            def block(route):
                requests.append(route.request.url)
                route.abort()

            page.route("http*://**/*", block)  # offline: any http(s) fetch is a failure
            yield page, errors, dialogs, requests
        finally:
            ctx.close()


def load_charts(page, page_path: Path) -> None:
    page.goto(page_path.resolve().as_uri())
    page.wait_for_function(
        "document.querySelectorAll('.chart').length === "
        "document.querySelectorAll('.chart[data-rendered], .chart[data-error]').length",
        timeout=30_000,
    )


def open_report(page_path: Path, tmp_path: Path, screenshot: Path):
    """Load the page with every network request blocked; return (errors, dialogs, chart info)."""
    with offline_page(tmp_path) as (page, errors, dialogs, requests):
        load_charts(page, page_path)
        info = page.evaluate(
            """() => Array.from(document.querySelectorAll('.chart')).map(c => ({
                figure: c.dataset.figure, error: c.dataset.error || null,
                svg: c.querySelectorAll('svg').length, marks: c.querySelectorAll('svg path, svg rect, svg line, svg circle, svg text').length}))"""
        )
        xss_text = page.evaluate("() => document.body.innerText.includes('<script>alert(1)</script>')")
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot), full_page=True)
    return errors, dialogs, requests, info, xss_text
