"""The report in a real browser: headless Debian Chromium via Playwright, no network at all.

Checks that the inlined Vega bundle draws every chart (SVG present, no JS errors), that model text
containing <script> never executes, and saves a screenshot to tests/artifacts/.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import pytest

from distill_kit.run import report

from tests.run.test_report import XSS, make_fake_run  # fixture builder shared with the report tests

CHROMIUM = os.environ.get("DISTILL_KIT_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} missing: run scripts/install_browser.sh"
)


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


def test_report_draws_in_headless_chromium(tmp_path: Path):
    run_dir = make_fake_run(tmp_path / "run")
    page_path = report.write_report(report.build_report(run_dir), run_dir / "report.html", static_formats=())
    shot = ARTIFACTS / "report-browser.png"
    errors, dialogs, requests, info, xss_text = open_report(page_path, tmp_path, shot)
    assert not errors, errors
    assert not dialogs, f"script in model text executed: {dialogs}"
    assert not requests, f"report tried to use the network: {requests}"
    assert len(info) == 6
    for chart in info:
        assert chart["error"] is None, chart
        assert chart["svg"] >= 1 and chart["marks"] > 5, chart
    assert xss_text, "the escaped probe should be visible as text"
    assert shot.stat().st_size > 20_000


def test_tooltips_show_model_text_once_escaped(tmp_path: Path):
    """Chart data carry raw model text (maps.preview does not pre-escape): vega-tooltip escapes it once,
    so the hover shows ``<script>`` literally, as text, and nothing runs."""
    run_dir = make_fake_run(tmp_path / "run")
    page_path = report.write_report(report.build_report(run_dir), run_dir / "report.html", static_formats=())
    shown = None
    with offline_page(tmp_path) as (page, errors, dialogs, _):
        load_charts(page, page_path)
        marks = page.locator('.chart svg path[aria-label*="model: evil"]')
        for k in range(marks.count()):  # some marks sit under a CI rule or label; try until one answers
            mark = marks.nth(k)
            mark.scroll_into_view_if_needed()
            box = mark.bounding_box()
            if not box:
                continue
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=3)
            page.wait_for_timeout(150)
            shown = page.evaluate("() => { const t = document.getElementById('vg-tooltip-element');"
                                  " return t && t.classList.contains('visible') ? [t.innerText, t.innerHTML] : null }")
            if shown:
                break
    assert shown, "no tooltip appeared over a mark of the model named with <script>"
    text, inner = shown
    assert XSS in text and "&lt;script&gt;" not in text  # shown once, as typed
    assert "<script>" not in inner
    assert not dialogs and not errors, (dialogs, errors)
