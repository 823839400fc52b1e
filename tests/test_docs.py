"""The docs site: built with ``mkdocs build --strict`` (no broken link, no anchor that is not there, no page
missing from the navigation), an executed notebook rendered as a page without its widget state, and every page
opened in headless Chromium from ``file://`` with nothing fetched off the machine and no script error."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.helpers.browser import launch, needs_chromium
from tests.helpers.installed import needs
from tests.helpers.paths import ROOT

pytestmark = [pytest.mark.slow, needs("mkdocs", "material", "mkdocs_jupyter")]  # mkdocs in a subprocess, then a browser

WIDGET = "application/vnd.jupyter.widget-view+json"


def executed_notebook(path: Path) -> None:
    """A small executed notebook as the pipeline leaves one: a table, a widget view with saved widget state (which
    nbconvert would load a widget manager from a CDN for) and a plain-text result."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    widget = new_output("display_data", data={WIDGET: {"model_id": "m1", "version_major": 2, "version_minor": 0},
                                              "text/plain": "VBox(children=(...))"})
    table = new_output("display_data", data={"text/html": "<table><tr><td>deepseek-chat</td><td>0.34</td></tr></table>",
                                             "text/plain": "table"})
    nb = new_notebook(cells=[
        new_markdown_cell("# 03 identity scores\n\nLIS per model."),
        new_code_cell("scores_table()", outputs=[table], execution_count=1),
        new_code_cell("browser()", outputs=[widget], execution_count=2),
        new_code_cell("1 + 1", outputs=[new_output("execute_result", data={"text/plain": "2"}, execution_count=3)],
                      execution_count=3),
    ])
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}, "version_major": 2,
                                                                             "version_minor": 0}}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site built as ``make docs`` builds it, from a copy of docs/ with a stand-in demo run (the repository's
    working tree is not written to)."""
    work = tmp_path_factory.mktemp("docs")
    shutil.copytree(ROOT / "docs", work / "docs", ignore=shutil.ignore_patterns("demo"))
    shutil.copy(ROOT / "mkdocs.yml", work / "mkdocs.yml")
    run = work / "run"
    executed_notebook(run / "notebooks" / "03-identity-scores.ipynb")
    (run / "report.html").write_text("<!doctype html><title>report</title><p>the run's report</p>", encoding="utf-8")
    demo = subprocess.run([sys.executable, str(ROOT / "scripts" / "docs_demo.py"), "--run", str(run),
                           "--out", str(work / "docs" / "demo")], capture_output=True, text=True, timeout=120)
    assert demo.returncode == 0, demo.stderr
    assert "1 executed notebook(s)" in demo.stdout
    build = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(work / "mkdocs.yml"),
                            "-d", str(work / "site")], capture_output=True, text=True, timeout=300, cwd=work,
                           env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert build.returncode == 0, build.stdout + build.stderr
    assert "WARNING" not in build.stderr, build.stderr
    return work / "site"


def test_strict_build_renders_every_page_and_the_demo_notebook_without_widget_state(site: Path) -> None:
    pages = {p.relative_to(site).as_posix() for p in site.rglob("*.html")}
    expected = {"index.html", "data.html", "models.html", "protocol.html", "cost.html", "reliability.html",
                "scale-out.html", "extending.html", "architecture.html", "parameters.html", "notebooks.html",
                "testing.html", "about.html", "demo/index.html", "demo/03-identity-scores.html", "demo/report.html",
                "results/index.html", "results/collection.html", "results/identity.html", "results/zoo.html"}
    assert expected <= pages, expected - pages
    notebook = (site / "demo" / "03-identity-scores.html").read_text(encoding="utf-8")
    assert "deepseek-chat" in notebook and "LIS per model" in notebook  # the executed outputs are on the page
    assert "widget-state" not in notebook and "html-manager" not in notebook and "unpkg" not in notebook
    assert "Interactive widget" in notebook  # the widget view became the pipeline's static note
    assert 'href="03-identity-scores.html"' in (site / "demo" / "index.html").read_text(encoding="utf-8")


def test_the_site_builds_without_a_demo_run_and_says_so(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "docs_demo.py"), "--run", str(tmp_path / "none"),
                           "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "no demo run" in done.stdout
    assert "run `make demo`, then `make docs`" in (out / "index.md").read_text(encoding="utf-8")
    assert sorted(p.name for p in out.iterdir()) == ["index.md"]


def off_machine(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in ("file", "data", "blob", "about"):
        return False
    return parts.hostname not in ("127.0.0.1", "localhost")


@needs_chromium
def test_every_page_opens_offline_from_file_without_errors_and_search_works(site: Path) -> None:
    from playwright.sync_api import sync_playwright

    # 404.html is the web server's page for a missing path: its links are absolute (/assets/...) by design
    pages = sorted(p for p in site.rglob("*.html") if p.name != "404.html")
    problems: list[str] = []
    requested: list[str] = []
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_page()
            page.on("request", lambda r: requested.append(r.url) if off_machine(r.url) else None)
            page.route("http*://**/*", lambda route: route.abort() if off_machine(route.request.url) else route.continue_())
            page.on("pageerror", lambda e: problems.append(f"{page.url}: pageerror {e}"))
            page.on("console", lambda m: problems.append(f"{page.url}: console {m.text}") if m.type == "error" else None)
            for path in pages:
                page.goto(path.as_uri(), wait_until="load")
                page.wait_for_timeout(100)  # scripts that run after load (search index, notebook JS)
            # search from file:// runs in the vendored iframe-worker shim: typing finds a page
            page.goto((site / "index.html").as_uri(), wait_until="load")
            page.keyboard.press("s")  # Material's search hotkey focuses the search box
            page.keyboard.type("spending cap")
            page.wait_for_selector(".md-search-result__item", timeout=15_000)
            hits = page.locator(".md-search-result__item").all_inner_texts()
        finally:
            browser.close()
    assert not requested, f"requests off the machine: {sorted(set(requested))[:5]}"
    assert not problems, problems[:8]
    assert any("cap" in h.lower() for h in hits)
