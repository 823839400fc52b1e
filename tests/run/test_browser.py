"""The report in a real browser: headless Debian Chromium via Playwright, no network at all.

Checks that the inlined Vega bundle draws every chart (SVG present, no JS errors), that model text
containing <script> never executes, and saves a screenshot to tests/artifacts/.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from distill_kit import html
from distill_kit.run import report
from tests.helpers.browser import CHROMIUM, load_charts, offline_page, open_report
from tests.helpers.fake_run import XSS, make_fake_run
from tests.helpers.paths import ARTIFACTS

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} missing: run scripts/install_browser.sh")]


def test_report_draws_in_headless_chromium(tmp_path: Path):
    run_dir = make_fake_run(tmp_path / "run")
    page_path = html.write_page(report.build_report(run_dir, str(run_dir / "store.sqlite")), run_dir / "report.html", static_formats=())
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
    page_path = html.write_page(report.build_report(run_dir, str(run_dir / "store.sqlite")), run_dir / "report.html", static_formats=())
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


def test_wide_tables_stay_inside_their_section(tmp_path: Path):
    """The verdict table has 18 columns and readable sentence cells: wider than the page's main column. It scrolls
    inside its section's card instead of running out of it over the page background."""
    run_dir = make_fake_run(tmp_path / "run")
    page_path = html.write_page(report.build_report(run_dir, str(run_dir / "store.sqlite")), run_dir / "report.html", static_formats=())
    with offline_page(tmp_path) as (page, errors, _, _):
        load_charts(page, page_path)
        out = page.evaluate("""() => Array.from(document.querySelectorAll('section')).flatMap(s => {
            const edge = s.getBoundingClientRect().right;
            return Array.from(s.querySelectorAll('table')).map(t => ({id: s.id, wide: t.scrollWidth > s.clientWidth,
                visible_past_edge: Math.max(0, Math.min(t.getBoundingClientRect().right, window.innerWidth) - edge)
                    * (getComputedStyle(s).overflowX === 'visible' ? 1 : 0)}));
        })""")
    assert any(t["wide"] for t in out), "the fixture should hold a table wider than its section"
    assert not [t for t in out if t["visible_past_edge"] > 1], [t for t in out if t["visible_past_edge"] > 1]
    assert not errors, errors
