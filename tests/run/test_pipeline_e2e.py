"""End to end: `python -m distill_kit run` on the tiny shipped config, with a fake API key in the
environment that must not appear in any output; then the run's report in headless Chromium."""

from __future__ import annotations

import json
import os
import secrets
import string
import subprocess
import sys
from pathlib import Path

import pytest

from distill_kit.paths import PROJECT_ROOT
from distill_kit.run.plan import load_run_config

CONFIG = PROJECT_ROOT / "configs" / "runs" / "ci-small.yaml"
pytestmark = pytest.mark.slow  # the CLI, its notebooks and a browser

FAKE_KEY = "sk-test-" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(30))


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    env = {**os.environ, "OPENAI_API_KEY": FAKE_KEY, "ANTHROPIC_API_KEY": FAKE_KEY + "a"}
    proc = subprocess.run([sys.executable, "-m", "distill_kit", "run", str(CONFIG), "--runs-dir", str(runs)],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=170)
    run_dir = runs / load_run_config(CONFIG).run_id()
    return proc, run_dir


def test_ci_config_runs_end_to_end(ci_run):
    proc, run_dir = ci_run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cfg = load_run_config(CONFIG)
    assert f"report: {run_dir / 'report.html'}" in proc.stdout
    summary = json.loads((run_dir / "summary.json").read_text())
    state = json.loads((run_dir / "state.json").read_text())["steps"]
    for step in cfg.steps:
        name = next(n for n in state if n.startswith(step.notebook))
        assert state[name]["status"] == "ok"
        assert (run_dir / "notebooks" / f"{name}.ipynb").is_file()
        assert (run_dir / "html" / f"{name}.html").is_file()
        assert state[name]["summaries"], f"{name} recorded no summary"
        assert all(w in summary["steps"] for w in state[name]["summaries"])
        rendered = (run_dir / "html" / f"{name}.html").read_text()
        assert "cdn.jsdelivr.net" not in rendered, f"{name}.html loads Vega from a CDN (charts blank offline)"
    page = (run_dir / "report.html").read_text()
    for key in ("ice", "rse", "similarity"):  # the steps ci-small runs fill their sections
        assert f'<section id="{key}" class="ran">' in page, key
    assert '<section id="umap" class="%s">' % ("ran" if "05" in [s.notebook for s in cfg.steps] else "missing") in page
    report_nb = (run_dir / "html" / "06-report.html").read_text()
    assert "record_summary(" not in report_nb  # code hidden in the rendered report notebook


def test_no_secret_in_any_output(ci_run):
    _, run_dir = ci_run
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert len(files) > 5
    for p in files:
        data = p.read_bytes()
        assert FAKE_KEY.encode() not in data, f"API key leaked into {p}"


def test_run_report_draws_in_browser(ci_run, tmp_path):
    from tests.helpers.browser import CHROMIUM, open_report
    from tests.helpers.paths import ARTIFACTS

    if not Path(CHROMIUM).exists():
        pytest.skip("chromium missing: run scripts/install_browser.sh")
    _, run_dir = ci_run
    errors, dialogs, requests, info, _ = open_report(run_dir / "report.html", tmp_path, ARTIFACTS / "ci-run-report.png")
    assert not errors and not dialogs and not requests, (errors, dialogs, requests)
    assert all(c["error"] is None and c["svg"] >= 1 for c in info), info
