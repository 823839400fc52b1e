"""The workbench as users use it: JupyterLab in headless Chromium, every notebook run with Run All.

One JupyterLab for the module (loopback, free port, temporary token, isolated settings), serving small-parameter
copies of notebooks 01-06 that write into a temporary run directory and store. For each notebook the test clicks
Run > Run All Cells and asserts: no cell has an error output; every chart cell drew an SVG or canvas (Altair's
default renderer would show "Error loading script" from a CDN instead); the widgets rendered; no request of the
page left the machine. It drives the 01 probe editor with clicks and typing (filter, select, edit, add, a
duplicate id's message, save; the saved file holds the change), hovers a chart for its tooltip, and clicks
through the 03 answer browser (labels land in labels.sqlite), the 04 pair explorer and the 05 teacher picker.
A screenshot per notebook goes to tests/artifacts/.
"""

from __future__ import annotations

import importlib.util
import os
import re
import secrets
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlparse

import pytest

from distill_kit.ice import probes as P
from distill_kit.processes import stop_process

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = os.environ.get("DISTILL_KIT_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
LIVE = importlib.util.find_spec("llama_cpp") is not None
RUN_TIMEOUT_S = {"01": 120, "02": 420, "03": 300, "04": 420, "05": 420, "06": 240}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} missing: run scripts/install_browser.sh"),
]


def small_parameters(work: Path) -> dict[str, dict[str, Any]]:
    """Parameters that keep every notebook to seconds or a minute on two cores."""
    run, store = str(work / "run"), str(work / "store.sqlite")
    return {
        "01": {"probes_path": str(work / "probes.yaml"), "save_to": "", "run_dir": run},
        "02": {"live_models": ["smollm2-local"] if LIVE else ["replay:alpaca-eval/zephyr-7b-beta"],
               "probe_sample_size": 1, "seed_templates": 1, "prompt_sets": ["alpaca-eval"], "sample_size": 1,
               "max_tokens": 16, "store_path": store, "run_dir": run},
        "03": {"models": ["phi-4", "qwen2.5-14b-instruct"], "judge": "rules", "source": "replay", "sample_size": 30,
               "store_path": store, "run_dir": run},
        "04": {"models": ["gpt4_0613", "vicuna-7b-v1.5", "guanaco-33b"], "reference": "gpt4_1106_preview",
               "sample_size": 5, "seed": 1, "drilldown_n": 1, "store_path": store, "run_dir": run},
        "05": {"models": ["text_davinci_003", "gpt-3.5-turbo-0301", "claude-2", "alpaca-7b", "wizardlm-13b", "guanaco-33b"],
               "sample_size": 12, "attribution_sample_size": 40, "seed": 1, "run_dir": run},
        "06": {"run_dir": run, "store_path": store, "static_formats": []},
    }


def notebook_path(num: str) -> Path:
    return next(NOTEBOOKS.glob(f"{num}-*.ipynb"))


CHART_CALL = re.compile(r"\bcharts\.(?!\w*_html\b)\w+\(|\bshow_in_notebook\(")  # *_html are tables


class Lab:
    """A JupyterLab server on loopback plus one Chromium page; every request the page makes is recorded."""

    def __init__(self, root: Path, port: int, token: str, page: Any, requests: list[str], errors: list[str]):
        self.root, self.port, self.token, self.page = root, port, token, page
        self.requests, self.errors = requests, errors
        self.last_run: tuple[str, list[dict[str, Any]]] | None = None  # (notebook, its cells) of the last Run All

    def url(self, path: str) -> str:
        """The notebook alone in its own fresh workspace (no tabs restored from the previous notebook)."""
        ws = re.sub(r"\W", "", Path(path).stem)
        return f"http://127.0.0.1:{self.port}/lab/workspaces/{ws}/tree/{path}?reset&token={self.token}"

    def external_requests(self) -> list[str]:
        out = []
        for u in self.requests:
            parsed = urlparse(u)
            if parsed.scheme in ("data", "blob", "about", "chrome-extension"):
                continue
            if parsed.hostname not in LOCAL_HOSTS:
                out.append(u)
        return out


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[Lab]:
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook
    from playwright.sync_api import sync_playwright

    from distill_kit.run.lab import free_port, lab_command, wait_listening

    work = tmp_path_factory.mktemp("lab")
    P.save_probes(P.load_probes()[:6], work / "probes.yaml")
    serve = work / "notebooks"
    serve.mkdir()
    for num, params in small_parameters(work).items():
        src = notebook_path(num)
        nb = parameterize_notebook(load_notebook_node(str(src)), params)
        nbformat.write(nb, serve / src.name)
    jupyter = work / "jupyter"
    token = secrets.token_hex(16)
    port = free_port(0)
    # settings as `distill-kit lab` ships them (news prompt and update check off: lab_command), in fresh folders
    cmd = lab_command(serve, port, token, extra=[
        "--LabApp.expose_app_in_browser=True",  # read kernel state and cell outputs from the page
        f"--LabApp.user_settings_dir={jupyter / 'settings'}", f"--LabApp.workspaces_dir={jupyter / 'workspaces'}",
        "--ServerApp.shutdown_no_activity_timeout=1800",  # bounded even if this process dies without cleanup
    ])
    env = {**cmd.env, "JUPYTER_CONFIG_DIR": str(jupyter / "config"), "JUPYTER_RUNTIME_DIR": str(jupyter / "runtime"),
           "DISTILL_KIT_LABELLER": "lab-test"}
    log = (work / "jupyterlab.log").open("w")
    proc = subprocess.Popen(cmd.argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=str(serve))
    try:
        assert wait_listening(port, proc, timeout=120), (work / "jupyterlab.log").read_text()[-3000:]
        requests: list[str] = []
        errors: list[str] = []
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.context.on("request", lambda r: requests.append(r.url))  # pages it opens count too
                page.on("pageerror", lambda e: errors.append(str(e)))
                yield Lab(work, port, token, page, requests, errors)
            finally:
                browser.close()
    finally:
        stop_process(proc, grace=30)
        log.close()


KERNEL_IDLE = ("() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
               " const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;"
               " return !!k && k.status === 'idle'; }")

CELL_STATE = """() => {
  const nb = window.jupyterapp.shell.currentWidget;
  const cells = nb.content.widgets;
  return cells.map((c, i) => {
    const m = c.model;
    if (m.type !== 'code') return null;
    const outputs = m.outputs.toJSON();
    return {i, source: m.sharedModel.getSource(), count: m.executionCount,
            errors: outputs.filter(o => o.output_type === 'error').map(o => o.ename + ': ' + o.evalue),
            n_outputs: outputs.length,
            text: c.outputArea.node.innerText.slice(0, 20000),
            svg: c.outputArea.node.querySelectorAll('svg.marks, .vega-embed svg, canvas, .jp-RenderedSVG svg, .jp-RenderedSVG img').length,
            marks: c.outputArea.node.querySelectorAll('svg path, svg rect, svg line, svg text, canvas, .jp-RenderedSVG img').length,
            widgets: c.outputArea.node.querySelectorAll('.jupyter-widgets.widget-container, .widget-vbox').length};
  }).filter(x => x);
}"""


def open_and_run_all(lab: Lab, num: str) -> list[dict[str, Any]]:
    """Open notebook ``num``, wait for its kernel, click Run > Run All Cells, wait until every cell ran."""
    page = lab.page
    name = notebook_path(num).name
    page.goto(lab.url(name))
    page.wait_for_function(KERNEL_IDLE, timeout=90_000)
    assert page.evaluate("() => window.jupyterapp.shell.currentWidget.context.path") == name
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    deadline = time.monotonic() + RUN_TIMEOUT_S[num]
    cells: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        time.sleep(2)
        cells = page.evaluate(CELL_STATE)
        errored = any(c["errors"] for c in cells)
        if errored or (all(c["count"] for c in cells) and page.evaluate(KERNEL_IDLE)):
            break
    else:
        screenshot(lab, f"{num}-timeout")
        pytest.fail(f"{name}: not every cell ran within {RUN_TIMEOUT_S[num]} s: "
                    f"{[c['i'] for c in cells if not c['count']]} pending")
    time.sleep(1.5)  # let widget views and charts draw
    cells = page.evaluate(CELL_STATE)
    lab.last_run = (num, cells)
    return cells


def ran_all(lab: Lab, num: str) -> list[dict[str, Any]]:
    """Notebook ``num`` run with Run All: the run the test before made if the page still shows it, else a new
    one. Two tests that look at the same run (the widgets, then the HTML export) pay for one."""
    if lab.last_run is not None and lab.last_run[0] == num and lab.page.evaluate(
            "() => window.jupyterapp.shell.currentWidget.context.path") == notebook_path(num).name:
        return lab.last_run[1]
    return open_and_run_all(lab, num)


def check_notebook(lab: Lab, num: str, cells: list[dict[str, Any]], min_charts: int, widget_cells: int) -> None:
    name = notebook_path(num).name
    errors = [(c["i"], c["errors"]) for c in cells if c["errors"]]
    assert not errors, f"{name}: error output in cells {errors}"
    assert all(c["count"] for c in cells), f"{name}: cells not run"
    for c in cells:
        assert "Error loading script" not in c["text"], f"{name} cell {c['i']}: chart JavaScript from a CDN"
    chart_cells = [c for c in cells if CHART_CALL.search(c["source"]) and c["n_outputs"]]
    for c in chart_cells:
        lab.page.evaluate(f"() => window.jupyterapp.shell.currentWidget.content.widgets[{c['i']}].node.scrollIntoView()")
    if chart_cells:
        time.sleep(1.0)
        cells = lab.page.evaluate(CELL_STATE)
        chart_cells = [c for c in cells if CHART_CALL.search(c["source"]) and c["n_outputs"]]
    undrawn = [c["i"] for c in chart_cells if not (c["svg"] and c["marks"])]
    assert not undrawn, f"{name}: chart cells {undrawn} drew no SVG/canvas"
    assert len(chart_cells) >= min_charts, f"{name}: {len(chart_cells)} chart cells, expected {min_charts}"
    with_widgets = [c["i"] for c in cells if c["widgets"]]
    assert len(with_widgets) >= widget_cells, f"{name}: widgets rendered in cells {with_widgets}"
    assert not lab.external_requests(), f"requests left the machine: {lab.external_requests()[:5]}"


def screenshot(lab: Lab, num: str, locator: Any = None) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    out = ARTIFACTS / f"lab-{num}.png"
    if locator is not None:  # the widget's top at the top of the window
        locator.evaluate("(el) => el.scrollIntoView({block: 'start'})")
        time.sleep(0.3)
    lab.page.screenshot(path=str(out))
    return out


def cell_output(lab: Lab, index: int) -> Any:
    return lab.page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".jp-OutputArea")


def widget_cell(cells: list[dict[str, Any]], marker: str) -> int:
    return next(c["i"] for c in cells if marker in c["source"])


def dropdown(scope: Any, label: str, nth: int = 0) -> Any:
    return scope.locator(".widget-dropdown", has=scope.page.locator("label", has_text=re.compile(f"^{label}$"))).nth(nth).locator("select")


def text_input(scope: Any, label: str, nth: int = 0) -> Any:
    return scope.locator(".widget-text", has=scope.page.locator("label", has_text=re.compile(f"^{label}$"))).nth(nth).locator("input")


def wait_text(lab: Lab, out: Any, selector: str, *texts: str, timeout: int = 15_000) -> str:
    """Wait until the element ``selector`` inside ``out`` shows every text (whitespace-normalised); widgets
    replace their HTML on each update, so the element is looked up afresh each time."""
    lab.page.wait_for_function(
        """([root, sel, texts]) => { const el = root.querySelector(sel);
             const t = el ? el.innerText.replace(/\\s+/g, ' ') : null;
             return t !== null && texts.every(x => t.includes(x)); }""",
        arg=[out.element_handle(), selector, list(texts)], timeout=timeout)
    return out.locator(selector).first.inner_text()


def settle(lab: Lab) -> None:
    """Let the widget messages of the last action reach the kernel and its replies come back."""
    time.sleep(0.5)
    lab.page.wait_for_function(KERNEL_IDLE, timeout=30_000)
    time.sleep(0.3)


def option_value(select: Any, starts: str) -> str:
    """The value of the listbox option whose label starts with ``starts`` (ipywidgets use the label)."""
    values = select.evaluate("(el) => Array.from(el.options).map(o => o.value)")
    return next(v for v in values if v.startswith(starts))


def hover_tooltip(lab: Lab, out: Any) -> str:
    """Hover the first data mark of a chart output; return the tooltip text Vega shows."""
    marks = out.locator("svg g.role-mark.mark-rect path, svg g.role-mark.mark-symbol path")
    for i in range(min(marks.count(), 5)):
        mark = marks.nth(i)
        mark.scroll_into_view_if_needed()
        box = mark.bounding_box()
        if not box:
            continue
        for fx, fy in ((0.5, 0.5), (0.15, 0.15), (0.85, 0.85)):  # off any text label drawn over the mark
            lab.page.mouse.move(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy, steps=2)
            try:
                lab.page.wait_for_selector("#vg-tooltip-element.visible", timeout=2_000)
            except Exception:
                continue
            return lab.page.inner_text("#vg-tooltip-element")
    pytest.fail("no tooltip on hovering the chart's marks")


# ------------------------------------------------------------------------------------------ the tests

NEWS_PROMPT = "Would you like to get notified about official Jupyter news?"


def test_00_no_news_prompt_and_nothing_fetched_from_outside(lab: Lab) -> None:
    """JupyterLab as `distill-kit lab` starts it asks nothing about news (its "Yes" fetches a feed from the
    internet) and checks for no update: the shipped settings overrides set both off."""
    page = lab.page
    page.goto(f"http://127.0.0.1:{lab.port}/lab/workspaces/news?reset&token={lab.token}")
    page.wait_for_function("() => !!window.jupyterapp && window.jupyterapp.shell.node.isConnected", timeout=90_000)
    page.wait_for_selector(".jp-LabShell", timeout=90_000)
    time.sleep(6)  # the prompt is a notification raised once the app is restored
    toasts = page.locator(".Toastify__toast").all_inner_texts()
    assert not any(NEWS_PROMPT in t for t in toasts), toasts
    api = f"http://127.0.0.1:{lab.port}/lab/api"
    schema = page.context.request.get(f"{api}/settings/@jupyterlab/apputils-extension:notification"
                                      f"?token={lab.token}").json()["schema"]["properties"]
    defaults = {k: schema[k]["default"] for k in ("fetchNews", "checkForUpdates")}  # overrides land here
    assert defaults == {"fetchNews": "false", "checkForUpdates": False}, defaults
    assert page.context.request.get(f"{api}/news?token={lab.token}").json().get("news") == []  # no feed asked for
    assert not lab.external_requests(), lab.external_requests()[:5]


def export_html(lab: Lab, num: str) -> str:
    """The notebook saved and exported to HTML by JupyterLab's own export call; the exported page's text.

    File > Save and Export Notebook As > HTML saves the notebook and calls the service manager's
    ``nbconvert.exportAs``, which opens the server's ``/nbconvert/html/<path>?download=true`` in a new tab.
    The test saves, makes that same call, reads the URL the tab was opened on, and fetches it with the same
    server and token: the bytes a user's download holds, made by the server's nbconvert with the
    project's Jupyter config. (Clicking the menu item itself opened no tab in headless Chromium here.)"""
    page = lab.page
    page.keyboard.press("Control+s")
    page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.context.model.dirty", timeout=60_000)
    url = page.evaluate("""async () => {
        const opened = []; const open = window.open;
        window.open = (u, ...rest) => { opened.push(String(u)); return null; };
        try {
            const path = window.jupyterapp.shell.currentWidget.context.path;
            await window.jupyterapp.serviceManager.nbconvert.exportAs(
                {format: 'html', path, exporterOptions: {download: true}});
        } finally { window.open = open; }
        return opened[0] || null; }""")
    assert url and "/nbconvert/html/" in url and notebook_path(num).name in url, url
    url = url if url.startswith("http") else f"http://127.0.0.1:{lab.port}{url}"
    reply = page.context.request.get(f"{url}&token={lab.token}", timeout=300_000)
    assert reply.ok, reply.status
    return reply.text()


def test_01_probe_editor_by_clicks_and_typing(lab: Lab) -> None:
    cells = open_and_run_all(lab, "01")
    check_notebook(lab, "01", cells, min_charts=0, widget_cells=1)
    out = cell_output(lab, widget_cell(cells, "editor.show()"))
    listing = out.locator(".widget-select select").first
    assert listing.locator("option").count() == 6
    # filter: language zh hides the six English probes; a search narrows the English ones
    dropdown(out, "language", 0).select_option("zh")
    lab.page.wait_for_function("(el) => el.options.length === 0", arg=listing.element_handle(), timeout=10_000)
    dropdown(out, "language", 0).select_option("")
    text_input(out, "search").fill("")
    text_input(out, "search").type("you")
    n_match = sum("you" in p.text.lower() for p in P.load_probes(lab.root / "probes.yaml"))
    lab.page.wait_for_function("([el, n]) => el.options.length === n", arg=[listing.element_handle(), n_match],
                               timeout=10_000)
    text_input(out, "search").fill("")
    lab.page.wait_for_function("(el) => el.options.length === 6", arg=listing.element_handle(), timeout=10_000)
    # select a probe: the form loads it; edit its text and update
    listing.select_option(option_value(listing, "en-002"))
    text_area = out.locator(".widget-textarea textarea").first
    lab.page.wait_for_function("(el) => el.value === 'en-002'", arg=text_input(out, "id").element_handle(), timeout=10_000)
    settle(lab)
    text_area.fill("Which lab trained you")
    text_area.press("End")
    text_area.type(", honestly?")
    settle(lab)
    out.locator("button", has_text=re.compile("^update$")).click()
    message = out.locator(".widget-html-content").first
    message.locator("text=updated en-002").wait_for(timeout=10_000)
    # add a new probe
    text_input(out, "id").fill("")
    text_area.fill("")
    text_area.type("Who is your maker?")
    settle(lab)
    out.locator("button", has_text=re.compile("^add$")).click()
    message.locator("text=added en-007").wait_for(timeout=10_000)
    assert listing.locator("option").count() == 7
    # a duplicate id is refused with a message
    text_input(out, "id").fill("en-001")
    settle(lab)
    out.locator("button", has_text=re.compile("^update$")).click()
    message.locator("text=duplicate id").wait_for(timeout=10_000)
    text_input(out, "id").fill("en-007")
    settle(lab)
    # save: the probe file on disk holds both changes
    out.locator("button", has_text=re.compile("^save$")).click()
    message.locator("text=saved 7 probes").wait_for(timeout=10_000)
    saved = {p.id: p.text for p in P.load_probes(lab.root / "probes.yaml")}
    assert saved["en-002"] == "Which lab trained you, honestly?" and saved["en-007"] == "Who is your maker?"
    assert len(saved) == 7
    screenshot(lab, "01", out)
    assert not lab.external_requests()


def test_02_collect_runs_in_lab(lab: Lab) -> None:
    cells = open_and_run_all(lab, "02")
    check_notebook(lab, "02", cells, min_charts=0, widget_cells=0)
    assert "identity prompts each" in "".join(c["text"] for c in cells)
    screenshot(lab, "02")


def test_03_charts_and_answer_browser(lab: Lab) -> None:
    cells = open_and_run_all(lab, "03")
    check_notebook(lab, "03", cells, min_charts=2, widget_cells=1)
    chart = cell_output(lab, next(c["i"] for c in cells if "identity_score_chart(ours" in c["source"]))
    assert hover_tooltip(lab, chart)
    out = cell_output(lab, widget_cell(cells, "AnswerBrowser("))
    out.scroll_into_view_if_needed()
    listing = out.locator(".widget-select select").first
    dropdown(out, "model").select_option("phi-4")
    from distill_kit.ice.browse import VERDICTS

    dropdown(out, "verdict").select_option(label=VERDICTS["consistent"])
    settle(lab)
    options = listing.evaluate("(el) => Array.from(el.options).map(o => o.value)")
    assert options and all(o.startswith("phi-4 | ") for o in options), options[:3]
    listing.locator("option").nth(1 if len(options) > 1 else 0).click()
    settle(lab)
    chosen = options[1] if len(options) > 1 else options[0]
    shown = wait_text(lab, out, ".dk-answer", " ".join(chosen.split(" | ")[2][:40].split()))  # its question
    assert "model: phi-4" in shown and "prompt:" in shown and "loose: consistent" in shown
    key = re.search(r"key ([0-9a-f]{16})", shown).group(1)
    out.locator("button", has_text="contradicts identity").click()
    settle(lab)
    out.locator("button", has_text="claims OpenAI/Anthropic: yes").click()
    settle(lab)
    out.locator("text=saved to labels.sqlite").wait_for(timeout=10_000)
    from distill_kit.ice.labels import read_labels

    labels = read_labels(lab.root / "run" / "labels.sqlite")
    assert labels.select("model", "key", "loose_label", "strict_label", "labeller").rows() == [
        ("phi-4", key, True, True, "lab-test")]
    assert "labelled by lab-test" in out.locator(".dk-label").first.inner_text()
    screenshot(lab, "03", out)


def test_03_export_to_html_opens_offline(lab: Lab, tmp_path: Path) -> None:
    """The everyday way to share a notebook (Lab's HTML export) gives a page that is whole offline: no script
    from a CDN (require.js, MathJax, the unpkg widget manager), each chart as its static SVG, each widget as
    its static HTML. Opened in a browser with every http(s) request blocked, nothing is asked for. It exports the
    run the answer-browser test made (after it in this file), or runs the notebook itself when run alone."""
    cells = ran_all(lab, "03")
    check_notebook(lab, "03", cells, min_charts=2, widget_cells=1)
    text = export_html(lab, "03")
    scripts = re.findall(r'<script[^>]*src="([^"]+)"', text)
    assert not scripts, scripts
    for cdn in ("cdnjs.cloudflare.com", "unpkg.com", "cdn.jsdelivr.net"):
        assert cdn not in text, cdn
    assert "application/vnd.jupyter.widget-state+json" not in text
    assert text.count("data:image/svg+xml") >= 2 or text.count("<svg") >= 2, "charts carry no static fallback"
    page_path = tmp_path / "03-identity-scores.html"
    page_path.write_text(text, encoding="utf-8")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    blocked: list[str] = []
    errors: list[str] = []
    offline = lab.page.context.browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = offline.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.route("http*://**/*", lambda route: (blocked.append(route.request.url), route.abort()))  # offline
        page.goto(page_path.resolve().as_uri())
        page.wait_for_load_state("load")
        images = page.evaluate("() => Array.from(document.images).filter(i => i.src.startsWith('data:image/svg')"
                               " && i.complete && i.naturalWidth > 0).length")
        page.screenshot(path=str(ARTIFACTS / "lab-03-export.png"))
    finally:
        offline.close()
    assert not blocked, blocked[:5]
    assert not errors, errors[:5]
    assert images >= 2, f"{images} charts drew offline"


def test_04_charts_and_pair_explorer(lab: Lab) -> None:
    cells = open_and_run_all(lab, "04")
    check_notebook(lab, "04", cells, min_charts=3, widget_cells=1)
    heat = cell_output(lab, next(c["i"] for c in cells if "similarity_heatmap" in c["source"]))
    tip = hover_tooltip(lab, heat)
    assert "test_model" in tip and "reference" in tip and "score" in tip, tip
    screenshot(lab, "04-chart")  # the interactive heatmap with its tooltip (README)
    out = cell_output(lab, widget_cell(cells, "PairExplorer("))
    out.scroll_into_view_if_needed()
    dropdown(out, "test model").select_option("guanaco-33b")
    dropdown(out, "reference").select_option("gpt4_0613")
    settle(lab)
    prompts = dropdown(out, "prompt")
    values = prompts.evaluate("(el) => Array.from(el.options).map(o => o.value)")
    assert len(values) >= 2
    prompts.select_option(values[1])
    text = wait_text(lab, out, ".dk-pair", "test: guanaco-33b", "reference: gpt4_0613")
    assert all(f"{a}:" in text for a in ("style", "structure", "content")) and "n/a" not in text
    screenshot(lab, "04", out)


def test_05_charts_and_teacher_picker(lab: Lab) -> None:
    cells = open_and_run_all(lab, "05")
    check_notebook(lab, "05", cells, min_charts=4, widget_cells=1)
    umap = cell_output(lab, next(c["i"] for c in cells if "charts.response_map(" in c["source"]))
    assert "model" in hover_tooltip(lab, umap)
    out = cell_output(lab, widget_cell(cells, "TeacherPicker("))
    out.scroll_into_view_if_needed()
    student = dropdown(out, "student")
    options = student.evaluate("(el) => Array.from(el.options).map(o => o.value)")
    assert len(options) >= 2
    student.select_option(options[1])
    text = wait_text(lab, out, ".dk-teachers", f"student: {options[1]}")
    assert "confidence" in text and "example answer pair" in text
    screenshot(lab, "05", out)


def test_06_report_in_lab(lab: Lab) -> None:
    cells = open_and_run_all(lab, "06")
    check_notebook(lab, "06", cells, min_charts=1, widget_cells=0)
    screenshot(lab, "06")
    assert not lab.errors, lab.errors[:5]


def test_distill_kit_lab_prints_a_working_url_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    """`distill-kit lab` as typed: it prints the loopback URL with its token once JupyterLab answers there,
    the URL opens (and without the token it does not), and Ctrl-C stops the server."""
    import signal
    import sys
    import urllib.error
    import urllib.request

    from distill_kit.run.lab import free_port

    port = free_port(0)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt")}
    proc = subprocess.Popen([sys.executable, "-m", "distill_kit", "lab", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        url = None
        deadline = time.monotonic() + 120
        while url is None and time.monotonic() < deadline and proc.poll() is None:
            line = proc.stdout.readline()
            m = re.search(r"(http://127\.0\.0\.1:\d+/lab\?token=[0-9a-f]{48})", line)
            url = m.group(1) if m else None
        assert url and f":{port}/" in url, "no URL printed"
        with urllib.request.urlopen(url, timeout=30) as resp:
            assert resp.status == 200 and "JupyterLab" in resp.read().decode()
        bare = url.split("?")[0].replace("/lab", "/api/contents")
        with pytest.raises(urllib.error.HTTPError, match="403"):
            urllib.request.urlopen(bare, timeout=30)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in the terminal reaches the whole process group
        assert proc.wait(timeout=60) in (0, 130)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
