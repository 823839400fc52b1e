"""Key values never reach what a run writes, and its pages open offline (issue #15, items 7 and 8).

One real CLI run: a collection notebook whose provider echoes the presented key in an error and in an
answer, a run description with the key pasted in, a widget, and the project's real report notebook.
"""

from __future__ import annotations

import re
import secrets
import shutil
import string
import subprocess
import sys

import nbformat
import pytest

from distill_kit import nbexport, redact
from distill_kit.paths import PROJECT_ROOT
from distill_kit.run.plan import load_run_config
from distill_kit.store import Store
from distill_kit.testing import Fault, LoopbackServer
from tests.helpers.notebook_files import write_notebook

KEY_VAR = "LOOP_API_KEY"

BODY = """
import ipywidgets
from IPython.display import display
from distill_kit.collect import ChatRequest, collect_sync, outcome_line
from distill_kit.config import GenerationParams, ModelConfig
from tests.helpers.contracts import record_open
from distill_kit.store import Store
cfg = ModelConfig(name="leaky", provider="openai", model="loopback", base_url=url, api_key_env="LOOP_API_KEY",
                  concurrency=2, timeout=5, max_retries=0, params=GenerationParams(max_tokens=8))
out = collect_sync(cfg, [ChatRequest.user(f"question {i}") for i in range(4)], Store(store_path), progress=False)
print(outcome_line("leaky", out))
for r in out:
    print(r.text, r.error)
record_open(run_dir, "02-collect", {"answers": [r.text for r in out], "errors": [r.error for r in out]})
display(ipywidgets.IntSlider(value=3, description="threshold"))
ipywidgets.HTML("<b>a widget</b>")
"""


@pytest.fixture(scope="module")
def leaky_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("leaky")
    key = "lk-" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))
    nb_dir = tmp / "nb"
    nb_dir.mkdir()
    write_notebook(nb_dir / "02-collect.ipynb", 'url: str = ""\nrun_dir: str = ""\nstore_path: str = ""\nseed: int = 0\n', BODY)
    shutil.copy(PROJECT_ROOT / "notebooks" / "06-report.ipynb", nb_dir / "06-report.ipynb")
    with LoopbackServer() as srv:
        srv.inject_for("question 1", Fault(401, echo_key=True), always=True)
        srv.inject_for("question 2", Fault(echo_key=True), always=True)
        cfg = tmp / "leaky.yaml"
        cfg.write_text(f"name: leaky\ndescription: 'pasted by mistake: {key}'\nsteps:\n"
                       f"  - notebook: '02'\n    parameters: {{url: '{srv.base_url}'}}\n  - notebook: '06'\n"
                       "    parameters: {static_formats: [svg]}\n")
        env = {**__import__("os").environ, KEY_VAR: key}
        proc = subprocess.run([sys.executable, "-m", "distill_kit", "run", str(cfg), "--runs-dir", str(tmp / "runs"),
                               "--notebooks-dir", str(nb_dir)], capture_output=True, text=True, timeout=400,
                              cwd=PROJECT_ROOT, env=env)
        echoed = [c for c in srv.state.calls if key in c["headers"].get("authorization", "")]
    run_dir = tmp / "runs" / load_run_config(cfg).run_id()
    return proc, run_dir, key, echoed


@pytest.mark.slow
def test_the_key_is_in_no_file_the_run_wrote(leaky_run):
    proc, run_dir, key, echoed = leaky_run
    assert proc.returncode == 0, proc.stderr
    assert echoed, "the provider did see the key (so it could echo it)"
    assert key not in proc.stdout + proc.stderr
    files = [f for f in run_dir.rglob("*") if f.is_file()]
    assert {"config.json", "summary.json", "report.html", "store.sqlite"} <= {f.name for f in files}
    leaked = [str(f.relative_to(run_dir)) for f in files if key.encode() in f.read_bytes()]
    assert leaked == []
    with Store(run_dir / "store.sqlite") as store:
        rows = {p: (t, e) for p, t, e in store.frame().select("prompt", "text", "error").iter_rows()}
    assert "[REDACTED]" in rows["question 1"][1] and "401" in rows["question 1"][1]  # echoed in the error
    assert "[REDACTED]" in rows["question 2"][0]  # echoed in the answer
    assert "[REDACTED]" in (run_dir / "config.json").read_text()  # the pasted description


@pytest.mark.slow
def test_rendered_pages_load_nothing_remote(leaky_run):
    proc, run_dir, _, _ = leaky_run
    assert proc.returncode == 0, proc.stderr
    pages = sorted((run_dir / "html").glob("*.html")) + [run_dir / "report.html"]
    assert len(pages) == 3
    remote = re.compile(r"""<(script|link|img|iframe)[^>]+(src|href)\s*=\s*["']?(https?:)?//""", re.IGNORECASE)
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert "unpkg.com" not in text and not remote.search(text), page.name
    widget_page = (run_dir / "html" / "02-collect.html").read_text(encoding="utf-8")
    assert widget_page.count(nbexport.WIDGET_NOTE) == 2  # each widget says where it lives instead
    assert "application/vnd.jupyter.widget-state+json" not in widget_page


def test_configured_key_variables_are_redacted_whatever_their_name(tmp_path, monkeypatch):
    models = tmp_path / "models.yaml"
    models.write_text("models:\n  - {name: a, provider: openai, api_key_env: ACME_CRED}\n")
    monkeypatch.setattr(redact, "MODELS_FILE", models)
    monkeypatch.setenv("ACME_CRED", "acme-0123456789abcdef")
    monkeypatch.setenv("SHORT_TOKEN", "abc")  # too short to redact safely
    values = redact.secret_values()
    assert "acme-0123456789abcdef" in values and "abc" not in values
    assert redact.redact("x acme-0123456789abcdef y") == "x [REDACTED] y"
    assert redact.redact_value({"k": ["acme-0123456789abcdef"]}) == {"k": ["[REDACTED]"]}
    assert "acme-0123456789abcdef" in redact.secret_values()  # the runner's file scrub uses the same list


def test_static_widgets_keeps_real_html_and_notes_the_rest():
    nb = nbformat.v4.new_notebook()
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    mime = nbexport.WIDGET_MIME
    cell = nbformat.v4.new_code_cell("")
    cell.outputs = [
        nbformat.v4.new_output("display_data", data={mime: {"model_id": "a"}, "text/plain": "IntSlider(value=3)"}),
        nbformat.v4.new_output("display_data", data={mime: {"model_id": "b"}, "text/html": "<table>kept</table>",
                                                     "text/plain": "x"}),
        nbformat.v4.new_output("display_data", data={mime: {"model_id": "c"}, "text/plain": "a readable summary"}),
    ]
    nb.cells = [cell]
    out = nbexport.static_widgets(nb)
    assert "widgets" not in out.metadata
    data = [o["data"] for o in out.cells[0].outputs]
    assert all(mime not in d for d in data)
    assert data[0] == {"text/html": nbexport.WIDGET_NOTE}
    assert data[1]["text/html"] == "<table>kept</table>" and data[2] == {"text/plain": "a readable summary"}
