"""Headless Debian Chromium via Playwright with every http(s) request blocked: the report tests' browser."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = os.environ.get("DISTILL_KIT_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@contextmanager
def offline_page(tmp_path: Path):
    """A headless Chromium page with every http(s) request aborted (and recorded); yields
    (page, errors, dialogs, requests)."""
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    dialogs: list[str] = []
    requests: list[str] = []
    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=ARGS,
            viewport={"width": 1280, "height": 900},
        )
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
